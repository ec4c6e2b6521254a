// Plain C++ socket primitives behind the Node-API boundary: syscalls in, fd or errno out.
#pragma once

#include <string>

namespace reuseport {

// What to open: a TCP socket with SO_REUSEADDR + SO_REUSEPORT bound to a numeric address.
struct ListenSpec {
  std::string address;  // numeric IPv4 or IPv6 address, an IPv6 scope id allowed ("fe80::1%lo")
  int port = 0;         // 0..65535; 0 lets the kernel choose
  bool ipv6_only = false;
  bool listen = true;   // false: bind only (a slot socket that a worker listens on later)
  int backlog = 511;
};

// An open socket and the address the kernel actually bound (so port 0 reports the real port).
struct BoundSocket {
  int fd = -1;
  int family = 0;  // 4 or 6
  std::string address;
  int port = 0;
};

// Why an open failed: a positive errno and the call that returned it.
struct SocketFailure {
  int err = 0;
  const char* syscall = "";
};

// Opens a socket as `spec` says. On failure closes everything it opened and fills `failure`.
bool OpenListener(const ListenSpec& spec, BoundSocket* out, SocketFailure* failure);

// 0 when this kernel accepts SO_REUSEPORT (FreeBSD: SO_REUSEPORT_LB) on a TCP socket, else the errno.
int ProbeReusePort();

}  // namespace reuseport
