// Plain C++ primitives behind the Node-API boundary: syscalls in, fd or errno out. Sockets, the one
// process primitive the CPU-local mode needs (CPU affinity), and systemd's sd_notify datagram.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace reuseport {

// What to open: a TCP socket with SO_REUSEADDR + SO_REUSEPORT bound to a numeric address.
struct ListenSpec {
  std::string address;  // numeric IPv4 or IPv6 address, an IPv6 scope id allowed ("fe80::1%lo")
  int port = 0;         // 0..65535; 0 lets the kernel choose
  bool ipv6_only = false;
  bool listen = true;  // false: bind only (a slot socket that a worker listens on later)
  bool bind = true;    // datagram only: false opens and sets options but leaves it unbound
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

// 0 when this kernel accepts SO_REUSEPORT (FreeBSD: SO_REUSEPORT_LB) on a TCP socket, else the
// errno.
int ProbeReusePort();

// Opens a UDP socket with SO_REUSEPORT (and IPV6_V6ONLY as spec says) bound to spec's address
// (unbound when spec.bind is false: out then holds the fd, the family and spec's address and port);
// `listen` and `backlog` are ignored. No SO_REUSEADDR: on a Linux UDP socket it would let a socket
// of any user bind the same port beside it. On failure closes what it opened and fills `failure`.
bool OpenDatagram(const ListenSpec& spec, BoundSocket* out, SocketFailure* failure);

// Binds an unbound UDP socket (one OpenDatagram left unbound) to a numeric address of its family;
// out gets the address the kernel bound. 0 or the errno (EPROTOTYPE for anything but a UDP socket,
// EINVAL for one already bound); `syscall` names the call that failed.
int BindDatagram(int fd, const std::string& address, int port, BoundSocket* out,
                 const char** syscall);

// Clears SO_REUSEADDR on a bound UDP socket with SO_REUSEPORT (libuv's uv_udp_open sets it when a
// dgram socket adopts an fd). 0 or the errno: EPROTOTYPE for another kind of socket, EINVAL for a
// UDP socket without SO_REUSEPORT or not bound, ENOTSOCK; fds that are not ours are never changed.
int ClearDatagramReuseAddr(int fd);

// One classic BPF instruction (struct sock_filter's fields).
struct BpfInstruction {
  unsigned short code;
  unsigned char jt;
  unsigned char jf;
  unsigned int k;
};

// 0 when fd is a TCP socket with SO_REUSEPORT (bound or listening), else the errno that says why
// not (ENOTSOCK, EPROTOTYPE for another kind of socket, EINVAL without SO_REUSEPORT): fds that are
// not ours are never changed.
int CheckReusePortSocket(int fd);

// The accept queue of a listening TCP socket: connections waiting now and the queue's limit
// (Linux TCP_INFO: tcpi_unacked and tcpi_sacked on a listener). 0 or the errno: ENOTSUP when the
// answer is too short to hold those fields (qemu-user), or off Linux.
int AcceptQueue(int fd, int* queued, int* limit);

// listen(2) on a socket CheckReusePortSocket accepts. 0 or the errno.
int ListenSocket(int fd, int backlog);

// Attaches a classic BPF program to fd's SO_REUSEPORT group (Linux SO_ATTACH_REUSEPORT_CBPF): it
// picks the group's socket for each new connection. 0 or the errno (ENOTSUP where there is none).
int AttachReusePortProgram(int fd, const BpfInstruction* program, int length);

// What an inherited TCP socket is (one passed by a predecessor in an upgrade, or by systemd's
// LISTEN_FDS), read with getsockopt and getsockname only.
struct SocketInfo {
  int family = 0;  // 4 or 6
  std::string address;
  int port = 0;             // 0 when unbound
  bool listening = false;   // SO_ACCEPTCONN
  bool reuse_port = false;  // SO_REUSEPORT (FreeBSD: SO_REUSEPORT_LB)
  bool ipv6_only = false;   // IPV6_V6ONLY (Linux sets it on binding one IPv6 address); IPv4: false
};

// Describes fd without changing it. 0 or the errno (ENOTSOCK, EBADF, EPROTOTYPE for anything but an
// IPv4 or IPv6 TCP stream socket); `syscall` names the call that failed or that showed the kind.
int DescribeSocket(int fd, SocketInfo* out, const char** syscall);

// A listening TCP socket of this network namespace, as the kernel's socket table lists it.
struct ListeningEntry {
  int family = 0;  // 4 or 6
  std::string address;
  int port = 0;
  unsigned int uid = 0;
  unsigned long long inode = 0;
  unsigned int queued = 0;  // connections waiting in its accept queue
};

// The listening TCP sockets on `port` (0: every port), IPv4 and IPv6 (Linux sock_diag netlink:
// asks the kernel for listeners only, so the cost does not grow with connections or TIME_WAIT).
// 0 or the errno; `syscall` names the call that failed. ENOTSUP where there is no sock_diag.
int ListeningTcpSockets(int port, std::vector<ListeningEntry>* out, const char** syscall);

// The unconnected UDP sockets bound to `port` (0: every port), IPv4 and IPv6 (Linux sock_diag); the
// same entries as ListeningTcpSockets, `queued` being the bytes waiting in the receive queue.
int BoundUdpSockets(int port, std::vector<ListeningEntry>* out, const char** syscall);

// systemd's notify protocol (sd_pid_notify_with_fds): Node can neither send on a unix datagram
// socket nor pass fds over one (nodejs/node#53391).

// The most fds one message carries (Linux SCM_MAX_FD; more is EINVAL from the kernel).
constexpr int kMaxNotifyFds = 253;

// The size of sockaddr_un's sun_path here (108 on Linux, 104 on macOS and the BSDs). A filesystem
// path needs room for its closing NUL; an abstract name ('@' becomes the leading NUL) may fill it.
int NotifyPathCapacity();

// Sends `message` as one datagram to the AF_UNIX SOCK_DGRAM socket at `path` ($NOTIFY_SOCKET's
// form: "/run/systemd/notify", or "@name" for Linux's abstract namespace), with `fds` attached as
// SCM_RIGHTS when there are any. Uses a socket of its own, closed before returning. 0 or the errno
// (EBADF for a closed fd in fds, even one whose number that socket took); `syscall` names the call
// that failed.
int SendNotify(const std::string& path, const std::string& message, const std::vector<int>& fds,
               const char** syscall);

// The most CPUs an affinity mask can name here (glibc's CPU_SETSIZE).
constexpr int kMaxCpus = 1024;

// Restricts thread `tid` (0: the calling thread; a process's pid is its main thread) to `cpus`
// (Linux sched_setaffinity). 0 or the errno (ENOTSUP where there is no such call).
int SetCpuAffinity(int tid, const int* cpus, int count);

// The CPUs thread `tid` may run on, ascending (Linux sched_getaffinity). 0 or the errno.
int GetCpuAffinity(int tid, std::vector<int>* cpus);

// Processes: a runner that is PID 1 (or a subreaper) reaps the orphans the kernel gives it, without
// taking the exit status of a child libuv waits for. The decision is the caller's.

// The pid of a child of this process that has exited and can be waited for, left waitable
// (waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT)); *pid 0 when there is none (ECHILD included).
// 0 or the errno.
int PeekExitedChild(int* pid);

// Reaps child `pid` if it has exited (waitpid(pid, WNOHANG)): *reaped is `pid` then, else 0.
// 0 or the errno.
int ReapChild(int pid, int* reaped);

// Makes this process a child subreaper (Linux prctl(PR_SET_CHILD_SUBREAPER)): orphans of its
// descendants become its children. 0 or the errno (ENOSYS where there is no such call).
int SetChildSubreaper(bool on);

// Shared memory: the supervisor's progress cells (a small file on tmpfs) mapped into the supervisor
// and into each worker, so that a worker's count is a store and the supervisor's look a load, with
// no syscall either way.

// Maps the first `length` bytes of the regular file `fd`, readable, writable and shared (mmap
// MAP_SHARED). 0 or the errno: EINVAL for a length of 0 or a file shorter than `length` (a touch
// past its end would be a SIGBUS), ENODEV for anything but a regular file, or mmap's; `syscall`
// names the call that failed. UnmapShared undoes it.
int MapShared(int fd, size_t length, void** out, const char** syscall);
void UnmapShared(void* data, size_t length);

}  // namespace reuseport
