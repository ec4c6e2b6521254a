// Windows implementation of socket.h: Windows has no SO_REUSEPORT, so every open fails cleanly.
//
// Winsock cannot let several processes share one port with kernel load balancing. Its nearest
// options are not substitutes:
// - SO_REUSEADDR on Windows lets ANY later socket bind the same address and port, even one from
//   another user's process, which then silently takes over connections (port hijacking). It is
//   never set here, so this addon cannot open a port to theft. (POSIX SO_REUSEADDR only allows
//   rebinding past TIME_WAIT, which is why socket_posix.cc sets it.)
// - SO_EXCLUSIVEADDRUSE is the opposite (no sharing at all).
// The TypeScript layer plans a cluster shared handle on Windows instead (libuv's default there).
//
// No Winsock call is made, so nothing needs WSAStartup, nothing is opened and nothing can leak.
// The install builds nothing on Windows (install.cjs) and lib/binding.ts loads no addon there, so
// this file is only compiled by hand or by the MinGW syntax check; docs/windows.md says why no
// win32 prebuild ships (SO_EXCLUSIVEADDRUSE would not reach node:cluster's shared handle).
#include <errno.h>

#include "socket.h"

namespace reuseport {
namespace {

// What Windows lacks: the socket option itself, as POSIX would report an unsupported option.
constexpr int kUnsupported = ENOTSUP;

}  // namespace

bool OpenListener(const ListenSpec& /*spec*/, BoundSocket* out, SocketFailure* failure) {
  *out = BoundSocket();
  failure->err = kUnsupported;
  failure->syscall = "setsockopt";
  return false;
}

int ProbeReusePort() { return kUnsupported; }

bool OpenDatagram(const ListenSpec& /*spec*/, BoundSocket* out, SocketFailure* failure) {
  *out = BoundSocket();
  failure->err = kUnsupported;
  failure->syscall = "setsockopt";
  return false;
}

int BindDatagram(int /*fd*/, const std::string& /*address*/, int /*port*/, BoundSocket* out,
                 const char** syscall) {
  *out = BoundSocket();
  *syscall = "bind";
  return kUnsupported;
}

int ClearDatagramReuseAddr(int /*fd*/) { return kUnsupported; }

int CheckReusePortSocket(int /*fd*/) { return kUnsupported; }

int ListenSocket(int /*fd*/, int /*backlog*/) { return kUnsupported; }

int AcceptQueue(int /*fd*/, int* /*queued*/, int* /*limit*/) { return kUnsupported; }

int AttachReusePortProgram(int /*fd*/, const BpfInstruction* /*program*/, int /*length*/) {
  return kUnsupported;
}

int DescribeSocket(int /*fd*/, SocketInfo* out, const char** syscall) {
  *out = SocketInfo();
  *syscall = "getsockopt";
  return kUnsupported;
}

// afunix.h's UNIX_PATH_MAX; Windows' AF_UNIX has stream sockets only, and no systemd to notify.
int NotifyPathCapacity() { return 108; }

int SendNotify(const std::string& /*path*/, const std::string& /*message*/,
               const std::vector<int>& /*fds*/, const char** syscall) {
  *syscall = "socket";
  return kUnsupported;
}

int SetCpuAffinity(int /*tid*/, const int* /*cpus*/, int /*count*/) { return kUnsupported; }

int GetCpuAffinity(int /*tid*/, std::vector<int>* cpus) {
  cpus->clear();
  return kUnsupported;
}

int BoundUdpSockets(int /*port*/, std::vector<ListeningEntry>* out, const char** syscall) {
  out->clear();
  *syscall = "socket";
  return kUnsupported;
}

int ListeningTcpSockets(int /*port*/, std::vector<ListeningEntry>* out, const char** syscall) {
  out->clear();
  *syscall = "socket";
  return kUnsupported;
}

// No orphans to reap on Windows: no such calls.
int PeekExitedChild(int* pid) {
  *pid = 0;
  return ENOSYS;
}

int ReapChild(int /*pid*/, int* reaped) {
  *reaped = 0;
  return ENOSYS;
}

int SetChildSubreaper(bool /*on*/) { return ENOSYS; }

int MapShared(int /*fd*/, size_t /*length*/, void** out, const char** syscall) {
  *out = nullptr;
  *syscall = "mmap";
  return kUnsupported;
}

void UnmapShared(void* /*data*/, size_t /*length*/) {}

}  // namespace reuseport
