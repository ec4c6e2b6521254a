// POSIX implementation of socket.h: the only file that makes syscalls.
#include <arpa/inet.h>

#include "socket.h"
#ifdef __linux__
#include <linux/filter.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <sys/time.h>
#endif
#include <errno.h>
#ifdef __linux__
#include <sched.h>
#include <sys/prctl.h>
#endif
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

// The option that makes a socket join a balanced group: FreeBSD >= 12's SO_REUSEPORT_LB (its plain
// SO_REUSEPORT shares the port without balancing), else SO_REUSEPORT.
#if defined(SO_REUSEPORT_LB)
#define REUSEPORT_OPTION SO_REUSEPORT_LB
#elif defined(SO_REUSEPORT)
#define REUSEPORT_OPTION SO_REUSEPORT
#endif

namespace reuseport {
namespace {

// Closes fd on every early return, keeping errno as the failing call left it.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) {
      int saved = errno;
      close(fd_);
      errno = saved;
    }
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

bool Fail(SocketFailure* failure, int err, const char* syscall) {
  failure->err = err;
  failure->syscall = syscall;
  return false;
}

// Parses a numeric address (no DNS: AI_NUMERICHOST) into a sockaddr with the port set.
int ParseAddress(const std::string& address, int port, sockaddr_storage* storage,
                 socklen_t* length) {
  addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
  addrinfo* found = nullptr;
  if (getaddrinfo(address.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return EINVAL;
  }
  std::memcpy(storage, found->ai_addr, found->ai_addrlen);
  *length = found->ai_addrlen;
  freeaddrinfo(found);
  if (storage->ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(storage)->sin_port = htons(static_cast<uint16_t>(port));
  } else if (storage->ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(storage)->sin6_port = htons(static_cast<uint16_t>(port));
  } else {
    return EAFNOSUPPORT;
  }
  return 0;
}

// A non-blocking, close-on-exec socket of `type` (SOCK_STREAM or SOCK_DGRAM).
int OpenSocket(int family, int type) {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  return socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
#else
  int fd = socket(family, type, 0);
  if (fd < 0) return fd;
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
#endif
}

int OpenStreamSocket(int family) { return OpenSocket(family, SOCK_STREAM); }

int SetFlag(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof(value));
}

int GetFlag(int fd, int level, int name, int* value) {
  socklen_t length = sizeof(*value);
  return getsockopt(fd, level, name, value, &length);
}

void DescribeBound(const sockaddr_storage& storage, BoundSocket* out) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    out->family = 6;
    out->port = ntohs(in6->sin6_port);
  } else {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&storage);
    inet_ntop(AF_INET, &in4->sin_addr, text, sizeof(text));
    out->family = 4;
    out->port = ntohs(in4->sin_port);
  }
  out->address = text;
}

// Opens, sets the options and binds a socket of `type`; a stream socket also listens if spec says
// so. SO_REUSEADDR only for TCP: there it just allows rebinding past TIME_WAIT, while on a Linux
// UDP socket it lets a socket of any user bind the same port.
bool OpenBound(const ListenSpec& spec, int type, BoundSocket* out, SocketFailure* failure) {
  sockaddr_storage address;
  socklen_t length = 0;
  std::memset(&address, 0, sizeof(address));
  int err = ParseAddress(spec.address, spec.port, &address, &length);
  if (err != 0) return Fail(failure, err, "getaddrinfo");

  FdGuard fd(OpenSocket(address.ss_family, type));
  if (fd.get() < 0) return Fail(failure, errno, "socket");

  if (type == SOCK_STREAM && SetFlag(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1) != 0) {
    return Fail(failure, errno, "setsockopt");
  }
#ifdef REUSEPORT_OPTION
  if (SetFlag(fd.get(), SOL_SOCKET, REUSEPORT_OPTION, 1) != 0) {
    return Fail(failure, errno, "setsockopt");
  }
#else
  return Fail(failure, ENOTSUP, "setsockopt");
#endif
  if (address.ss_family == AF_INET6 &&
      SetFlag(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, spec.ipv6_only ? 1 : 0) != 0) {
    return Fail(failure, errno, "setsockopt");
  }
  if (type == SOCK_DGRAM && !spec.bind) {
    out->family = address.ss_family == AF_INET6 ? 6 : 4;
    out->address = spec.address;
    out->port = spec.port;
    out->fd = fd.release();
    return true;
  }
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0) {
    return Fail(failure, errno, "bind");
  }
  if (type == SOCK_STREAM && spec.listen && listen(fd.get(), spec.backlog) != 0) {
    return Fail(failure, errno, "listen");
  }

  sockaddr_storage bound;
  socklen_t bound_length = sizeof(bound);
  std::memset(&bound, 0, sizeof(bound));
  if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &bound_length) != 0) {
    return Fail(failure, errno, "getsockname");
  }
  DescribeBound(bound, out);
  out->fd = fd.release();
  return true;
}

}  // namespace

bool OpenListener(const ListenSpec& spec, BoundSocket* out, SocketFailure* failure) {
  return OpenBound(spec, SOCK_STREAM, out, failure);
}

bool OpenDatagram(const ListenSpec& spec, BoundSocket* out, SocketFailure* failure) {
  return OpenBound(spec, SOCK_DGRAM, out, failure);
}

// 0 when fd is an IPv4 or IPv6 UDP socket (its address in *address), else the errno.
static int CheckDatagramSocket(int fd, sockaddr_storage* address) {
  int type = 0;
  if (GetFlag(fd, SOL_SOCKET, SO_TYPE, &type) != 0) return errno;
  if (type != SOCK_DGRAM) return EPROTOTYPE;
  socklen_t address_length = sizeof(*address);
  std::memset(address, 0, sizeof(*address));
  if (getsockname(fd, reinterpret_cast<sockaddr*>(address), &address_length) != 0) return errno;
  if (address->ss_family != AF_INET && address->ss_family != AF_INET6) return EPROTOTYPE;
#ifdef SO_PROTOCOL
  int protocol = 0;
  if (GetFlag(fd, SOL_SOCKET, SO_PROTOCOL, &protocol) != 0) return errno;
  if (protocol != IPPROTO_UDP) return EPROTOTYPE;
#endif
  return 0;
}

int BindDatagram(int fd, const std::string& address, int port, BoundSocket* out,
                 const char** syscall) {
  *syscall = "getsockopt";
  sockaddr_storage current;
  int err = CheckDatagramSocket(fd, &current);
  if (err != 0) return err;
  BoundSocket now;
  DescribeBound(current, &now);
  if (now.port != 0) return EINVAL;
  *syscall = "getaddrinfo";
  sockaddr_storage target;
  socklen_t length = 0;
  err = ParseAddress(address, port, &target, &length);
  if (err != 0) return err;
  *syscall = "bind";
  if (target.ss_family != current.ss_family) return EAFNOSUPPORT;
  if (bind(fd, reinterpret_cast<sockaddr*>(&target), length) != 0) return errno;
  *syscall = "getsockname";
  sockaddr_storage bound;
  socklen_t bound_length = sizeof(bound);
  std::memset(&bound, 0, sizeof(bound));
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length) != 0) return errno;
  DescribeBound(bound, out);
  out->fd = fd;
  return 0;
}

int ClearDatagramReuseAddr(int fd) {
  sockaddr_storage address;
  int err = CheckDatagramSocket(fd, &address);
  if (err != 0) return err;
  BoundSocket bound;
  DescribeBound(address, &bound);
  if (bound.port == 0) return EINVAL;
#ifdef REUSEPORT_OPTION
  int reuse_port = 0;
  if (GetFlag(fd, SOL_SOCKET, REUSEPORT_OPTION, &reuse_port) != 0) return errno;
  if (!reuse_port) return EINVAL;
  return SetFlag(fd, SOL_SOCKET, SO_REUSEADDR, 0) == 0 ? 0 : errno;
#else
  return ENOTSUP;
#endif
}

int ProbeReusePort() {
#ifdef REUSEPORT_OPTION
  const int option = REUSEPORT_OPTION;
  FdGuard fd(OpenStreamSocket(AF_INET));
  if (fd.get() < 0) {
    FdGuard fd6(OpenStreamSocket(AF_INET6));
    if (fd6.get() < 0) return errno;
    return SetFlag(fd6.get(), SOL_SOCKET, option, 1) == 0 ? 0 : errno;
  }
  return SetFlag(fd.get(), SOL_SOCKET, option, 1) == 0 ? 0 : errno;
#else
  return ENOTSUP;
#endif
}

int CheckReusePortSocket(int fd) {
  int type = 0;
  socklen_t length = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0) return errno;
  if (type != SOCK_STREAM) return EPROTOTYPE;
  sockaddr_storage address;
  socklen_t address_length = sizeof(address);
  std::memset(&address, 0, sizeof(address));
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &address_length) != 0) return errno;
  if (address.ss_family != AF_INET && address.ss_family != AF_INET6) return EAFNOSUPPORT;
#ifdef REUSEPORT_OPTION
  const int option = REUSEPORT_OPTION;
  int reuse = 0;
  length = sizeof(reuse);
  if (getsockopt(fd, SOL_SOCKET, option, &reuse, &length) != 0) return errno;
  if (!reuse) return EINVAL;
  return 0;
#else
  return ENOTSUP;
#endif
}

int AcceptQueue(int fd, int* queued, int* limit) {
  // One getsockopt, nothing else: the supervisor reads every slot's queue on every check. It only
  // reads, so there is no need to check the socket's kind first (as the calls that change a socket
  // do): the kernel refuses TCP_INFO on anything but a TCP socket (ENOTSOCK, EOPNOTSUPP), and the
  // state says whether it listens.
#if defined(__linux__) && defined(TCP_INFO)
  tcp_info info;
  socklen_t length = sizeof(info);
  std::memset(&info, 0, sizeof(info));
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return errno;
  // The kernel writes as much of tcp_info as it knows (an older one than these headers writes
  // less), so only the fields read must be there. A shorter answer (qemu-user gives 4 bytes) holds
  // no queue: ENOTSUP, never a zeroed { 0, 0 }.
  if (length < offsetof(tcp_info, tcpi_sacked) + sizeof(info.tcpi_sacked)) return ENOTSUP;
  if (info.tcpi_state != TCP_LISTEN) return EINVAL;
  *queued = static_cast<int>(info.tcpi_unacked);
  *limit = static_cast<int>(info.tcpi_sacked);
  return 0;
#else
  (void)fd;
  (void)queued;
  (void)limit;
  return ENOTSUP;
#endif
}

int ListenSocket(int fd, int backlog) {
  int err = CheckReusePortSocket(fd);
  if (err != 0) return err;
  return listen(fd, backlog) == 0 ? 0 : errno;
}

int AttachReusePortProgram(int fd, const BpfInstruction* program, int length) {
  int err = CheckReusePortSocket(fd);
  if (err != 0) return err;
#if defined(__linux__) && defined(SO_ATTACH_REUSEPORT_CBPF)
  std::vector<sock_filter> filter(static_cast<size_t>(length));
  for (int i = 0; i < length; ++i) {
    filter[i].code = program[i].code;
    filter[i].jt = program[i].jt;
    filter[i].jf = program[i].jf;
    filter[i].k = program[i].k;
  }
  sock_fprog fprog;
  fprog.len = static_cast<unsigned short>(length);
  fprog.filter = filter.data();
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof(fprog)) != 0)
    return errno;
  return 0;
#else
  (void)program;
  (void)length;
  return ENOTSUP;
#endif
}

int DescribeSocket(int fd, SocketInfo* out, const char** syscall) {
  // Reads only (getsockopt, getsockname): the fd belongs to a predecessor or to systemd.
  *out = SocketInfo();
  *syscall = "getsockopt";
  int type = 0;
  if (GetFlag(fd, SOL_SOCKET, SO_TYPE, &type) != 0) return errno;
  if (type != SOCK_STREAM) return EPROTOTYPE;
  *syscall = "getsockname";
  sockaddr_storage address;
  socklen_t address_length = sizeof(address);
  std::memset(&address, 0, sizeof(address));
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &address_length) != 0) return errno;
  if (address.ss_family != AF_INET && address.ss_family != AF_INET6) return EPROTOTYPE;
  *syscall = "getsockopt";
#ifdef SO_PROTOCOL
  // SCTP's one-to-one sockets and MPTCP are SOCK_STREAM too.
  int protocol = 0;
  if (GetFlag(fd, SOL_SOCKET, SO_PROTOCOL, &protocol) != 0) return errno;
  if (protocol != IPPROTO_TCP) return EPROTOTYPE;
#endif
  int listening = 0;
  if (GetFlag(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening) != 0) return errno;
  int reuse_port = 0;
#ifdef REUSEPORT_OPTION
  if (GetFlag(fd, SOL_SOCKET, REUSEPORT_OPTION, &reuse_port) != 0) return errno;
#endif
  int ipv6_only = 0;
  if (address.ss_family == AF_INET6 && GetFlag(fd, IPPROTO_IPV6, IPV6_V6ONLY, &ipv6_only) != 0) {
    return errno;
  }
  BoundSocket bound;
  DescribeBound(address, &bound);
  out->family = bound.family;
  out->address = bound.address;
  out->port = bound.port;
  out->listening = listening != 0;
  out->reuse_port = reuse_port != 0;
  out->ipv6_only = ipv6_only != 0;
  return 0;
}

int NotifyPathCapacity() { return static_cast<int>(sizeof(sockaddr_un::sun_path)); }

namespace {

// A blocking close-on-exec AF_UNIX datagram socket. Blocking as sd_notify's is: a receiver whose
// queue is full makes the send wait for it rather than lose a READY=1 or the fds being stored.
int OpenNotifySocket() {
#ifdef SOCK_CLOEXEC
  return socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
#else
  int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
  if (fd < 0) return fd;
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
#endif
}

}  // namespace

int SendNotify(const std::string& path, const std::string& message, const std::vector<int>& fds,
               const char** syscall) {
  *syscall = "sendmsg";
  sockaddr_un address;
  std::memset(&address, 0, sizeof(address));
  address.sun_family = AF_UNIX;
  // A filesystem path ends with a NUL inside sun_path. An abstract name is its bytes exactly, the
  // '@' replaced by a NUL, and the length given must stop at its end: trailing NULs would be part
  // of the name.
  if (path.empty() || fds.size() > static_cast<size_t>(kMaxNotifyFds)) return EINVAL;
  const bool abstract = path[0] == '@';
  const size_t used = path.size() + (abstract ? 0 : 1);
  if (used > sizeof(address.sun_path)) return ENAMETOOLONG;
  std::memcpy(address.sun_path, path.data(), path.size());
  if (abstract) address.sun_path[0] = '\0';

  iovec payload;
  payload.iov_base = const_cast<char*>(message.data());
  payload.iov_len = message.size();
  msghdr header;
  std::memset(&header, 0, sizeof(header));
  header.msg_name = &address;
  header.msg_namelen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + used);
  header.msg_iov = &payload;
  header.msg_iovlen = 1;
  // Whole (zeroed) cmsghdrs, so the buffer is aligned as CMSG_FIRSTHDR expects.
  std::vector<cmsghdr> control;
  if (!fds.empty()) {
    const size_t bytes = sizeof(int) * fds.size();
    control.resize((CMSG_SPACE(bytes) + sizeof(cmsghdr) - 1) / sizeof(cmsghdr));
    header.msg_control = control.data();
    header.msg_controllen = static_cast<decltype(header.msg_controllen)>(CMSG_SPACE(bytes));
    cmsghdr* rights = CMSG_FIRSTHDR(&header);
    rights->cmsg_level = SOL_SOCKET;
    rights->cmsg_type = SCM_RIGHTS;
    rights->cmsg_len = static_cast<decltype(rights->cmsg_len)>(CMSG_LEN(bytes));
    std::memcpy(CMSG_DATA(rights), fds.data(), bytes);
  }

  *syscall = "socket";
  FdGuard fd(OpenNotifySocket());
  if (fd.get() < 0) return errno;
  *syscall = "sendmsg";
  // The socket took a number that was free: if it is one of fds, that fd was closed, and sending
  // would pass this socket in its place. Refuse as the kernel refuses a closed fd.
  if (std::find(fds.begin(), fds.end(), fd.get()) != fds.end()) return EBADF;
    // Never blocks: a manager that stops reading would otherwise stall the caller's event loop when
    // its queue is full; EAGAIN says so, and the caller decides whether to try again.
#ifdef MSG_NOSIGNAL
  const int flags = MSG_NOSIGNAL | MSG_DONTWAIT;
#else
  const int flags = MSG_DONTWAIT;
#endif
  ssize_t sent = 0;
  do {
    sent = sendmsg(fd.get(), &header, flags);
  } while (sent < 0 && errno == EINTR);
  return sent < 0 ? errno : 0;
}

int SetCpuAffinity(int tid, const int* cpus, int count) {
#ifdef __linux__
  if (count <= 0) return EINVAL;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int i = 0; i < count; ++i) {
    if (cpus[i] < 0 || cpus[i] >= CPU_SETSIZE) return EINVAL;
    CPU_SET(cpus[i], &set);
  }
  if (sched_setaffinity(tid, sizeof(set), &set) != 0) return errno;
  return 0;
#else
  (void)tid;
  (void)cpus;
  (void)count;
  return ENOTSUP;
#endif
}

int GetCpuAffinity(int tid, std::vector<int>* cpus) {
  cpus->clear();
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(tid, sizeof(set), &set) != 0) return errno;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus->push_back(cpu);
  }
  return 0;
#else
  (void)tid;
  return ENOTSUP;
#endif
}

#ifdef __linux__
namespace {

// One sock_diag dump of `family`'s listening TCP sockets into `out` (those on `port`, or all).
int DumpSockets(int netlink, int family, int protocol, unsigned int states, int port,
                std::vector<ListeningEntry>* out, const char** syscall) {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message;
  std::memset(&message, 0, sizeof(message));
  message.header.nlmsg_len = sizeof(message);
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.header.nlmsg_seq = static_cast<unsigned int>(family);
  message.request.sdiag_family = static_cast<unsigned char>(family);
  message.request.sdiag_protocol = static_cast<unsigned char>(protocol);
  message.request.idiag_states = states;
  sockaddr_nl kernel;
  std::memset(&kernel, 0, sizeof(kernel));
  kernel.nl_family = AF_NETLINK;
  if (sendto(netlink, &message, sizeof(message), 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof(kernel)) < 0) {
    *syscall = "sendto";
    return errno;
  }
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    ssize_t received = recv(netlink, buffer.data(), buffer.size(), 0);
    if (received < 0 && errno == EINTR) continue;
    if (received < 0) {
      *syscall = "recv";
      return errno;
    }
    if (received == 0) {
      *syscall = "recv";
      return EIO;
    }
    int length = static_cast<int>(received);
    for (nlmsghdr* header = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(header, length);
         header = NLMSG_NEXT(header, length)) {
      if (header->nlmsg_type == NLMSG_DONE) return 0;
      if (header->nlmsg_type == NLMSG_ERROR) {
        const nlmsgerr* failure = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(header));
        *syscall = "recv";
        return failure->error < 0 ? -failure->error : EIO;
      }
      if (header->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      const inet_diag_msg* socket = reinterpret_cast<const inet_diag_msg*>(NLMSG_DATA(header));
      int local_port = ntohs(socket->id.idiag_sport);
      if (port != 0 && local_port != port) continue;
      char text[INET6_ADDRSTRLEN] = "";
      if (inet_ntop(socket->idiag_family, socket->id.idiag_src, text, sizeof(text)) == nullptr)
        continue;
      ListeningEntry entry;
      entry.family = socket->idiag_family == AF_INET ? 4 : 6;
      entry.address = text;
      entry.port = local_port;
      entry.uid = socket->idiag_uid;
      entry.inode = socket->idiag_inode;
      entry.queued = socket->idiag_rqueue;
      out->push_back(entry);
    }
  }
}

}  // namespace
#endif

namespace {

// Every socket of `protocol` in `states` (a bit per TCP state number) on `port`, IPv4 then IPv6.
int DiagSockets(int protocol, unsigned int states, int port, std::vector<ListeningEntry>* out,
                const char** syscall) {
  out->clear();
#ifdef __linux__
  int netlink = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (netlink < 0) {
    *syscall = "socket";
    return errno;
  }
  FdGuard guard(netlink);
  // The kernel answers at once; the timeout only keeps a broken answer from hanging the caller.
  timeval timeout;
  timeout.tv_sec = 2;
  timeout.tv_usec = 0;
  if (setsockopt(netlink, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) != 0) {
    *syscall = "setsockopt";
    return errno;
  }
  for (int family : {AF_INET, AF_INET6}) {
    int err = DumpSockets(netlink, family, protocol, states, port, out, syscall);
    if (err != 0) {
      out->clear();
      return err;
    }
  }
  return 0;
#else
  (void)protocol;
  (void)states;
  (void)port;
  *syscall = "socket";
  return ENOTSUP;
#endif
}

}  // namespace

int ListeningTcpSockets(int port, std::vector<ListeningEntry>* out, const char** syscall) {
  return DiagSockets(IPPROTO_TCP, 1u << 10 /* TCP_LISTEN */, port, out, syscall);
}

int BoundUdpSockets(int port, std::vector<ListeningEntry>* out, const char** syscall) {
  // An unconnected UDP socket is in TCP_CLOSE (7) in the kernel's table; a connected one in
  // TCP_ESTABLISHED, which receives from its one peer only and is left out.
  return DiagSockets(IPPROTO_UDP, 1u << 7, port, out, syscall);
}

int PeekExitedChild(int* pid) {
  *pid = 0;
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  int result;
  do {
    result = waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
  } while (result != 0 && errno == EINTR);
  if (result != 0) return errno == ECHILD ? 0 : errno;
  *pid = info.si_pid;
  return 0;
}

int ReapChild(int pid, int* reaped) {
  *reaped = 0;
  int status = 0;
  pid_t result;
  do {
    result = waitpid(pid, &status, WNOHANG);
  } while (result < 0 && errno == EINTR);
  if (result < 0) return errno;
  *reaped = static_cast<int>(result);
  return 0;
}

int SetChildSubreaper(bool on) {
#if defined(__linux__) && defined(PR_SET_CHILD_SUBREAPER)
  return prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0) == 0 ? 0 : errno;
#else
  (void)on;
  return ENOSYS;
#endif
}

int MapShared(int fd, size_t length, void** out, const char** syscall) {
  *out = nullptr;
  *syscall = "mmap";
  if (length == 0) return EINVAL;
  struct stat info;
  if (fstat(fd, &info) != 0) {
    *syscall = "fstat";
    return errno;
  }
  if (!S_ISREG(info.st_mode)) return ENODEV;
  if (info.st_size < 0 || static_cast<unsigned long long>(info.st_size) < length) return EINVAL;
  void* data = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (data == MAP_FAILED) return errno;
  *out = data;
  return 0;
}

void UnmapShared(void* data, size_t length) {
  if (data != nullptr) munmap(data, length);
}

}  // namespace reuseport
