// Node-API boundary: checks and converts arguments, calls socket.h, turns failures into JS errors.
#include <napi.h>

#include <cmath>
#include <limits>
#include <vector>

#include "errors.h"
#include "socket.h"

namespace reuseport {
namespace {

// Reads options[name]; false when reading threw (a getter or a Proxy trap): that exception is left
// pending for JavaScript, and nothing else may be thrown on top of it.
bool ReadProperty(Napi::Env env, Napi::Object options, const char* name, Napi::Value* out) {
  *out = options.Get(name);
  return !env.IsExceptionPending();
}

// Reads options[name] as an integer in [min, max]; throws a JS error and returns false otherwise.
bool ReadInteger(Napi::Env env, Napi::Object options, const char* name, double min, double max,
                 int* out) {
  Napi::Value value;
  if (!ReadProperty(env, options, name, &value)) return false;
  if (!value.IsNumber()) {
    ArgumentTypeError(env, std::string("options.") + name + " must be a number")
        .ThrowAsJavaScriptException();
    return false;
  }
  double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::trunc(number) != number || number < min || number > max) {
    ArgumentRangeError(env, std::string("options.") + name + " must be an integer >= " +
                                std::to_string(static_cast<long long>(min)) +
                                " and <= " + std::to_string(static_cast<long long>(max)))
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = static_cast<int>(number);
  return true;
}

bool ReadBoolean(Napi::Env env, Napi::Object options, const char* name, bool fallback, bool* out) {
  Napi::Value value;
  if (!ReadProperty(env, options, name, &value)) return false;
  if (value.IsUndefined()) {
    *out = fallback;
    return true;
  }
  if (!value.IsBoolean()) {
    ArgumentTypeError(env, std::string("options.") + name + " must be a boolean")
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = value.As<Napi::Boolean>().Value();
  return true;
}

using Opener = bool (*)(const ListenSpec&, BoundSocket*, SocketFailure*);

// { fd, family, address, port } of a socket the addon opened or bound.
Napi::Object BoundToJs(Napi::Env env, const BoundSocket& bound) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", Napi::Number::New(env, bound.fd));
  result.Set("family", Napi::Number::New(env, bound.family));
  result.Set("address", Napi::String::New(env, bound.address));
  result.Set("port", Napi::Number::New(env, bound.port));
  return result;
}

// Reads { address, port, ipv6Only?, listen?, backlog? }, opens with `open`, returns
// { fd, family, address, port }. A datagram socket reads neither listen nor backlog.
Napi::Value OpenBoundJs(const Napi::CallbackInfo& info, Opener open, bool stream) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    ArgumentTypeError(env, "options must be an object").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object options = info[0].As<Napi::Object>();

  Napi::Value address;
  if (!ReadProperty(env, options, "address", &address)) return env.Undefined();
  if (!address.IsString()) {
    ArgumentTypeError(env, "options.address must be a string").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  ListenSpec spec;
  spec.address = address.As<Napi::String>().Utf8Value();
  if (spec.address.empty() || spec.address.size() > 255 ||
      spec.address.find('\0') != std::string::npos) {
    ArgumentRangeError(env, "options.address must be a numeric IP address")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!ReadInteger(env, options, "port", 0, 65535, &spec.port) ||
      !ReadBoolean(env, options, "ipv6Only", false, &spec.ipv6_only)) {
    return env.Undefined();
  }
  if (stream) {
    if (!ReadBoolean(env, options, "listen", true, &spec.listen)) return env.Undefined();
    Napi::Value backlog;
    if (!ReadProperty(env, options, "backlog", &backlog)) return env.Undefined();
    if (spec.listen && !backlog.IsUndefined() &&
        !ReadInteger(env, options, "backlog", 0, std::numeric_limits<int>::max(), &spec.backlog)) {
      return env.Undefined();
    }
  } else {
    spec.listen = false;
    if (!ReadBoolean(env, options, "bind", true, &spec.bind)) return env.Undefined();
  }

  BoundSocket bound;
  SocketFailure failure;
  if (!open(spec, &bound, &failure)) {
    SystemError(env, failure.err, failure.syscall, spec.address, spec.port)
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return BoundToJs(env, bound);
}

// openListener({ address, port, ipv6Only?, listen?, backlog? }) -> { fd, family, address, port }
Napi::Value OpenListenerJs(const Napi::CallbackInfo& info) {
  return OpenBoundJs(info, OpenListener, true);
}

// openDatagram({ address, port, ipv6Only? }) -> { fd, family, address, port }: a bound UDP socket.
Napi::Value OpenDatagramJs(const Napi::CallbackInfo& info) {
  return OpenBoundJs(info, OpenDatagram, false);
}

// probeReusePort() -> 0 when the kernel accepts SO_REUSEPORT on TCP, else a negative errno.
Napi::Value ProbeReusePortJs(const Napi::CallbackInfo& info) {
  int err = ProbeReusePort();
  return Napi::Number::New(info.Env(), -err);
}

// Reads info[index] as an integer in [0, max]; throws a TypeError or RangeError naming it and
// returns false otherwise.
bool ReadArgument(const Napi::CallbackInfo& info, size_t index, const char* name, int* out,
                  int max = std::numeric_limits<int>::max()) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || !info[index].IsNumber()) {
    ArgumentTypeError(env, std::string(name) + " must be a number").ThrowAsJavaScriptException();
    return false;
  }
  double number = info[index].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::trunc(number) != number || number < 0 || number > max) {
    std::string range =
        max == std::numeric_limits<int>::max() ? "" : " and <= " + std::to_string(max);
    ArgumentRangeError(env, std::string(name) + " must be an integer >= 0" + range)
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = static_cast<int>(number);
  return true;
}

// An fd: an integer in [0, INT_MAX].
bool ReadFd(const Napi::CallbackInfo& info, size_t index, int* fd) {
  return ReadArgument(info, index, "fd", fd);
}

// acceptQueue(fd) -> { queued, limit } for a listening SO_REUSEPORT TCP socket (Linux).
Napi::Value AcceptQueueJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ReadFd(info, 0, &fd)) return env.Undefined();
  int queued = 0;
  int limit = 0;
  int err = AcceptQueue(fd, &queued, &limit);
  if (err != 0) {
    SystemFdError(env, err, "getsockopt", fd).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("queued", Napi::Number::New(env, queued));
  result.Set("limit", Napi::Number::New(env, limit));
  return result;
}

// bindDatagram(fd, address, port) -> { fd, family, address, port }: binds an unbound UDP socket.
Napi::Value BindDatagramJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ReadFd(info, 0, &fd)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsString()) {
    ArgumentTypeError(env, "address must be a string").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string address = info[1].As<Napi::String>().Utf8Value();
  if (address.empty() || address.size() > 255 || address.find('\0') != std::string::npos) {
    ArgumentRangeError(env, "address must be a numeric IP address").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int port = 0;
  if (!ReadArgument(info, 2, "port", &port, 65535)) return env.Undefined();
  BoundSocket bound;
  const char* syscall = "";
  int err = BindDatagram(fd, address, port, &bound, &syscall);
  if (err != 0) {
    Napi::Error error = SystemError(env, err, syscall, address, port);
    error.Value().Set("fd", Napi::Number::New(env, fd));
    error.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return BoundToJs(env, bound);
}

// clearDatagramReuseAddr(fd): SO_REUSEADDR off on a bound SO_REUSEPORT UDP socket.
Napi::Value ClearDatagramReuseAddrJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ReadFd(info, 0, &fd)) return env.Undefined();
  int err = ClearDatagramReuseAddr(fd);
  if (err != 0) SystemFdError(env, err, "setsockopt", fd).ThrowAsJavaScriptException();
  return env.Undefined();
}

// listenSocket(fd, backlog): listen(2) on an SO_REUSEPORT TCP socket (a slot socket of the
// primary).
Napi::Value ListenSocketJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ReadFd(info, 0, &fd)) return env.Undefined();
  int backlog = 0;
  if (!ReadArgument(info, 1, "backlog", &backlog)) return env.Undefined();
  int err = ListenSocket(fd, backlog);
  if (err != 0) SystemFdError(env, err, "listen", fd).ThrowAsJavaScriptException();
  return env.Undefined();
}

// attachReusePortProgram(fd, program) where program is a flat array [code, jt, jf, k, ...].
Napi::Value AttachReusePortProgramJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ReadFd(info, 0, &fd)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsArray()) {
    ArgumentTypeError(env, "program must be an array of numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array flat = info[1].As<Napi::Array>();
  const uint32_t length = flat.Length();
  // BPF_MAXINSNS is 4096 instructions of 4 numbers each.
  if (length == 0 || length % 4 != 0 || length > 4096 * 4) {
    ArgumentRangeError(env, "program must hold 1 to 4096 instructions of 4 numbers each")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<BpfInstruction> program(length / 4);
  const double limits[4] = {65535, 255, 255, 4294967295.0};
  for (uint32_t i = 0; i < length; ++i) {
    Napi::Value value = flat.Get(i);
    if (env.IsExceptionPending()) return env.Undefined();
    if (!value.IsNumber()) {
      ArgumentTypeError(env, "program must be an array of numbers").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    double number = value.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(number) || std::trunc(number) != number || number < 0 ||
        number > limits[i % 4]) {
      ArgumentRangeError(env, "program holds a field out of range (code u16, jt u8, jf u8, k u32)")
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    BpfInstruction& instruction = program[i / 4];
    switch (i % 4) {
      case 0: instruction.code = static_cast<unsigned short>(number); break;
      case 1: instruction.jt = static_cast<unsigned char>(number); break;
      case 2: instruction.jf = static_cast<unsigned char>(number); break;
      default: instruction.k = static_cast<unsigned int>(number); break;
    }
  }
  int err = AttachReusePortProgram(fd, program.data(), static_cast<int>(program.size()));
  if (err != 0) {
    SystemFdError(env, err, "setsockopt", fd).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return env.Undefined();
}

// socketInfo(fd) -> { family, address, port, listening, reusePort, ipv6Only } of a TCP socket,
// read without changing it (an inherited listener the supervisor checks before using).
Napi::Value SocketInfoJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ReadFd(info, 0, &fd)) return env.Undefined();
  SocketInfo socket;
  const char* syscall = "";
  int err = DescribeSocket(fd, &socket, &syscall);
  if (err != 0) {
    SystemFdError(env, err, syscall, fd).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("family", Napi::Number::New(env, socket.family));
  result.Set("address", Napi::String::New(env, socket.address));
  result.Set("port", Napi::Number::New(env, socket.port));
  result.Set("listening", Napi::Boolean::New(env, socket.listening));
  result.Set("reusePort", Napi::Boolean::New(env, socket.reuse_port));
  result.Set("ipv6Only", Napi::Boolean::New(env, socket.ipv6_only));
  return result;
}

// notify(path, message, fds): one sd_notify datagram to the unix socket at path ($NOTIFY_SOCKET's
// form: absolute, or '@' and an abstract name), fds attached as SCM_RIGHTS when there are any.
Napi::Value NotifyJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    ArgumentTypeError(env, "path must be a string").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  // A path keeps one byte of sun_path for its closing NUL; an abstract name's '@' becomes its
  // leading NUL, so it may fill sun_path.
  const size_t capacity = static_cast<size_t>(NotifyPathCapacity());
  const bool absolute = !path.empty() && path[0] == '/';
  const bool abstract = path.size() > 1 && path[0] == '@';
  if ((!absolute && !abstract) || path.size() > (abstract ? capacity : capacity - 1) ||
      path.find('\0') != std::string::npos) {
    const std::string most = std::to_string(capacity - 1);
    ArgumentRangeError(env, "path must be an absolute path of at most " + most +
                                " bytes or '@' and an abstract name of at most " + most +
                                " bytes, without NUL")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (info.Length() < 2 || !info[1].IsString()) {
    ArgumentTypeError(env, "message must be a string").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const std::string message = info[1].As<Napi::String>().Utf8Value();
  if (message.empty() || message.find('\0') != std::string::npos) {
    ArgumentRangeError(env, "message must be a non-empty string without NUL")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (info.Length() < 3 || !info[2].IsArray()) {
    ArgumentTypeError(env, "fds must be an array of numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array list = info[2].As<Napi::Array>();
  const uint32_t length = list.Length();
  if (length > static_cast<uint32_t>(kMaxNotifyFds)) {
    ArgumentRangeError(
        env, "fds must hold at most " + std::to_string(kMaxNotifyFds) + " fds (SCM_MAX_FD)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<int> fds(length);
  for (uint32_t i = 0; i < length; ++i) {
    Napi::Value value = list.Get(i);
    if (env.IsExceptionPending()) return env.Undefined();
    if (!value.IsNumber()) {
      ArgumentTypeError(env, "fds must be an array of numbers").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    double number = value.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(number) || std::trunc(number) != number || number < 0 ||
        number > std::numeric_limits<int>::max()) {
      ArgumentRangeError(env, "fds must be integers >= 0").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    fds[i] = static_cast<int>(number);
  }
  const char* syscall = "";
  int err = SendNotify(path, message, fds, &syscall);
  if (err != 0) SystemAddressError(env, err, syscall, path).ThrowAsJavaScriptException();
  return env.Undefined();
}

// A thread or process id: an integer in [0, INT_MAX] (0: the calling thread).
bool ReadTid(const Napi::CallbackInfo& info, int* tid) { return ReadArgument(info, 0, "pid", tid); }

// setCpuAffinity(pid, cpus): restricts a thread (0: this one; a pid: that process's main thread).
Napi::Value SetCpuAffinityJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int tid = 0;
  if (!ReadTid(info, &tid)) return env.Undefined();
  if (info.Length() < 2 || !info[1].IsArray()) {
    ArgumentTypeError(env, "cpus must be an array of numbers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array list = info[1].As<Napi::Array>();
  const uint32_t length = list.Length();
  if (length == 0 || length > static_cast<uint32_t>(kMaxCpus)) {
    ArgumentRangeError(env, "cpus must hold 1 to " + std::to_string(kMaxCpus) + " CPU numbers")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<int> cpus(length);
  for (uint32_t i = 0; i < length; ++i) {
    Napi::Value value = list.Get(i);
    if (env.IsExceptionPending()) return env.Undefined();
    if (!value.IsNumber()) {
      ArgumentTypeError(env, "cpus must be an array of numbers").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    double number = value.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(number) || std::trunc(number) != number || number < 0 ||
        number >= kMaxCpus) {
      ArgumentRangeError(env, "cpus must be integers >= 0 and < " + std::to_string(kMaxCpus))
          .ThrowAsJavaScriptException();
      return env.Undefined();
    }
    cpus[i] = static_cast<int>(number);
  }
  int err = SetCpuAffinity(tid, cpus.data(), static_cast<int>(cpus.size()));
  if (err != 0) SystemPidError(env, err, "sched_setaffinity", tid).ThrowAsJavaScriptException();
  return env.Undefined();
}

// getCpuAffinity(pid) -> the CPUs that thread may run on, ascending.
Napi::Value GetCpuAffinityJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int tid = 0;
  if (!ReadTid(info, &tid)) return env.Undefined();
  std::vector<int> cpus;
  int err = GetCpuAffinity(tid, &cpus);
  if (err != 0) {
    SystemPidError(env, err, "sched_getaffinity", tid).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array result = Napi::Array::New(env, cpus.size());
  for (size_t i = 0; i < cpus.size(); ++i)
    result.Set(static_cast<uint32_t>(i), Napi::Number::New(env, cpus[i]));
  return result;
}

// peekExitedChild() -> the pid of an exited child still waitable (left so), or 0.
Napi::Value PeekExitedChildJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid = 0;
  int err = PeekExitedChild(&pid);
  if (err != 0) {
    SystemCallError(env, err, "waitid").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, pid);
}

// reapChild(pid) -> pid once reaped, 0 while it runs.
Napi::Value ReapChildJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid = 0;
  if (!ReadTid(info, &pid)) return env.Undefined();
  if (pid == 0) {
    ArgumentRangeError(env, "pid must be an integer >= 1").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int reaped = 0;
  int err = ReapChild(pid, &reaped);
  if (err != 0) {
    SystemPidError(env, err, "waitpid", pid).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, reaped);
}

// setChildSubreaper(on): prctl(PR_SET_CHILD_SUBREAPER).
Napi::Value SetChildSubreaperJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) {
    ArgumentTypeError(env, "on must be a boolean").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int err = SetChildSubreaper(info[0].As<Napi::Boolean>().Value());
  if (err != 0) SystemCallError(env, err, "prctl").ThrowAsJavaScriptException();
  return env.Undefined();
}

using SocketLister = int (*)(int, std::vector<ListeningEntry>*, const char**);

// Lists sockets on info[0] (a port; 0: every port) with `list`, as [{ family, address, port, uid,
// inode, queued }].
Napi::Value ListSocketsJs(const Napi::CallbackInfo& info, SocketLister list) {
  Napi::Env env = info.Env();
  int port = 0;
  if (!ReadArgument(info, 0, "port", &port, 65535)) return env.Undefined();
  std::vector<ListeningEntry> entries;
  const char* syscall = "";
  int err = list(port, &entries, &syscall);
  if (err != 0) {
    SystemCallError(env, err, syscall).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array result = Napi::Array::New(env, entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const ListeningEntry& entry = entries[i];
    Napi::Object item = Napi::Object::New(env);
    item.Set("family", Napi::Number::New(env, entry.family));
    item.Set("address", Napi::String::New(env, entry.address));
    item.Set("port", Napi::Number::New(env, entry.port));
    item.Set("uid", Napi::Number::New(env, entry.uid));
    item.Set("inode", Napi::String::New(env, std::to_string(entry.inode)));
    item.Set("queued", Napi::Number::New(env, entry.queued));
    result.Set(static_cast<uint32_t>(i), item);
  }
  return result;
}

// listeningSockets(port) -> the listening TCP sockets on port (0: every port).
Napi::Value ListeningSocketsJs(const Napi::CallbackInfo& info) {
  return ListSocketsJs(info, ListeningTcpSockets);
}

// datagramSockets(port) -> the unconnected UDP sockets bound to port (0: every port).
Napi::Value DatagramSocketsJs(const Napi::CallbackInfo& info) {
  return ListSocketsJs(info, BoundUdpSockets);
}

// The most bytes mapShared maps: the progress cells need a few pages.
constexpr int kMaxSharedBytes = 1 << 20;

// mapShared(fd, length) -> an ArrayBuffer over the file's first `length` bytes, shared with every
// process that maps the same file; unmapped when the ArrayBuffer is collected.
Napi::Value MapSharedJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  int length = 0;
  if (!ReadFd(info, 0, &fd)) return env.Undefined();
  if (!ReadArgument(info, 1, "length", &length, kMaxSharedBytes)) return env.Undefined();
  void* data = nullptr;
  const char* syscall = "mmap";
  int err = MapShared(fd, static_cast<size_t>(length), &data, &syscall);
  if (err != 0) {
    SystemFdError(env, err, syscall, fd).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const size_t size = static_cast<size_t>(length);
  return Napi::ArrayBuffer::New(env, data, size,
                                [size](Napi::Env, void* mapped) { UnmapShared(mapped, size); });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("openListener", Napi::Function::New(env, OpenListenerJs, "openListener"));
  exports.Set("probeReusePort", Napi::Function::New(env, ProbeReusePortJs, "probeReusePort"));
  exports.Set("listenSocket", Napi::Function::New(env, ListenSocketJs, "listenSocket"));
  exports.Set("acceptQueue", Napi::Function::New(env, AcceptQueueJs, "acceptQueue"));
  exports.Set("attachReusePortProgram",
              Napi::Function::New(env, AttachReusePortProgramJs, "attachReusePortProgram"));
  exports.Set("setCpuAffinity", Napi::Function::New(env, SetCpuAffinityJs, "setCpuAffinity"));
  exports.Set("getCpuAffinity", Napi::Function::New(env, GetCpuAffinityJs, "getCpuAffinity"));
  exports.Set("listeningSockets", Napi::Function::New(env, ListeningSocketsJs, "listeningSockets"));
  exports.Set("socketInfo", Napi::Function::New(env, SocketInfoJs, "socketInfo"));
  exports.Set("notify", Napi::Function::New(env, NotifyJs, "notify"));
  exports.Set("openDatagram", Napi::Function::New(env, OpenDatagramJs, "openDatagram"));
  exports.Set("bindDatagram", Napi::Function::New(env, BindDatagramJs, "bindDatagram"));
  exports.Set("clearDatagramReuseAddr",
              Napi::Function::New(env, ClearDatagramReuseAddrJs, "clearDatagramReuseAddr"));
  exports.Set("peekExitedChild", Napi::Function::New(env, PeekExitedChildJs, "peekExitedChild"));
  exports.Set("reapChild", Napi::Function::New(env, ReapChildJs, "reapChild"));
  exports.Set("setChildSubreaper",
              Napi::Function::New(env, SetChildSubreaperJs, "setChildSubreaper"));
  exports.Set("datagramSockets", Napi::Function::New(env, DatagramSocketsJs, "datagramSockets"));
  exports.Set("mapShared", Napi::Function::New(env, MapSharedJs, "mapShared"));
  return exports;
}

}  // namespace
}  // namespace reuseport

static Napi::Object InitReusePort(Napi::Env env, Napi::Object exports) {
  return reuseport::Init(env, exports);
}

NODE_API_MODULE(reuseport, InitReusePort)
