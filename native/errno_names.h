// Node's names for errno values ('EADDRINUSE'), without libuv, so the addon stays pure Node-API.
#pragma once

#include <errno.h>

namespace reuseport {

// The names libuv (and so Node) gives errno values; guarded, as not every platform has every one.
inline const char* ErrnoName(int err) {
#define REUSEPORT_ERRNO_NAME(name) \
  if (err == name) return #name;
#ifdef EACCES
  REUSEPORT_ERRNO_NAME(EACCES)
#endif
#ifdef EADDRINUSE
  REUSEPORT_ERRNO_NAME(EADDRINUSE)
#endif
#ifdef EADDRNOTAVAIL
  REUSEPORT_ERRNO_NAME(EADDRNOTAVAIL)
#endif
#ifdef EAFNOSUPPORT
  REUSEPORT_ERRNO_NAME(EAFNOSUPPORT)
#endif
#ifdef EAGAIN
  REUSEPORT_ERRNO_NAME(EAGAIN)
#endif
#ifdef EBADF
  REUSEPORT_ERRNO_NAME(EBADF)
#endif
#ifdef EFAULT
  REUSEPORT_ERRNO_NAME(EFAULT)
#endif
#ifdef EINTR
  REUSEPORT_ERRNO_NAME(EINTR)
#endif
#ifdef EINVAL
  REUSEPORT_ERRNO_NAME(EINVAL)
#endif
#ifdef EISCONN
  REUSEPORT_ERRNO_NAME(EISCONN)
#endif
#ifdef EMFILE
  REUSEPORT_ERRNO_NAME(EMFILE)
#endif
#ifdef ENFILE
  REUSEPORT_ERRNO_NAME(ENFILE)
#endif
#ifdef ENOBUFS
  REUSEPORT_ERRNO_NAME(ENOBUFS)
#endif
#ifdef ENOMEM
  REUSEPORT_ERRNO_NAME(ENOMEM)
#endif
#ifdef ENOPROTOOPT
  REUSEPORT_ERRNO_NAME(ENOPROTOOPT)
#endif
#ifdef ENOTSOCK
  REUSEPORT_ERRNO_NAME(ENOTSOCK)
#endif
#ifdef ENOTSUP
  REUSEPORT_ERRNO_NAME(ENOTSUP)
#endif
#if defined(EOPNOTSUPP) && (!defined(ENOTSUP) || EOPNOTSUPP != ENOTSUP)
  REUSEPORT_ERRNO_NAME(EOPNOTSUPP)
#endif
#ifdef EPERM
  REUSEPORT_ERRNO_NAME(EPERM)
#endif
#ifdef ENOTCONN
  REUSEPORT_ERRNO_NAME(ENOTCONN)
#endif
#ifdef EPROTONOSUPPORT
  REUSEPORT_ERRNO_NAME(EPROTONOSUPPORT)
#endif
#ifdef EPROTOTYPE
  REUSEPORT_ERRNO_NAME(EPROTOTYPE)
#endif
#ifdef ESRCH
  REUSEPORT_ERRNO_NAME(ESRCH)
#endif
#ifdef ESOCKTNOSUPPORT
  REUSEPORT_ERRNO_NAME(ESOCKTNOSUPPORT)
#endif
#undef REUSEPORT_ERRNO_NAME
  return "UNKNOWN";
}

}  // namespace reuseport
