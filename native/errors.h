// The one place that builds JS errors: OS failures shaped like Node's own, and argument errors.
#pragma once

#include <napi.h>
#include <string.h>

#include <cctype>
#include <string>

#include "errno_names.h"

namespace reuseport {

// The OS's description of an errno in libuv's style: "address already in use".
inline std::string Describe(int err) {
  std::string text = strerror(err);
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

// An OS error as Node shapes it: code ('EADDRINUSE'), errno (negative, as Node's on POSIX) and
// syscall; message "<syscall> <CODE>: <description><suffix>" ("socket EMFILE: too many open
// files").
inline Napi::Error SystemCallError(Napi::Env env, int err, const char* syscall,
                                   const std::string& suffix = "") {
  const char* code = ErrnoName(err);
  Napi::Error error =
      Napi::Error::New(env, std::string(syscall) + " " + code + ": " + Describe(err) + suffix);
  Napi::Object object = error.Value();
  object.Set("errno", Napi::Number::New(env, -err));
  object.Set("code", Napi::String::New(env, code));
  object.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

// Like Node's `ExceptionWithHostPort`: also address and port, and the message ends with them
// ("bind EADDRINUSE: address already in use 127.0.0.1:80").
inline Napi::Error SystemError(Napi::Env env, int err, const char* syscall,
                               const std::string& address, int port) {
  Napi::Error error =
      SystemCallError(env, err, syscall, " " + address + ":" + std::to_string(port));
  error.Value().Set("address", Napi::String::New(env, address));
  error.Value().Set("port", Napi::Number::New(env, port));
  return error;
}

// For a unix socket address (a path, or '@' and an abstract name): also address, as Node gives a
// unix socket's path ("sendmsg ENOENT: no such file or directory /run/systemd/notify").
inline Napi::Error SystemAddressError(Napi::Env env, int err, const char* syscall,
                                      const std::string& address) {
  Napi::Error error = SystemCallError(env, err, syscall, " " + address);
  error.Value().Set("address", Napi::String::New(env, address));
  return error;
}

// For a call on an fd: also fd ("setsockopt EINVAL: invalid argument (fd 12)").
inline Napi::Error SystemFdError(Napi::Env env, int err, const char* syscall, int fd) {
  Napi::Error error = SystemCallError(env, err, syscall, " (fd " + std::to_string(fd) + ")");
  error.Value().Set("fd", Napi::Number::New(env, fd));
  return error;
}

// For a call on a thread or process: also pid ("sched_setaffinity ESRCH: no such process (pid
// 4242)").
inline Napi::Error SystemPidError(Napi::Env env, int err, const char* syscall, int pid) {
  Napi::Error error = SystemCallError(env, err, syscall, " (pid " + std::to_string(pid) + ")");
  error.Value().Set("pid", Napi::Number::New(env, pid));
  return error;
}

// TypeError / RangeError carrying a Node-style `code` (ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE).
inline Napi::Error ArgumentTypeError(Napi::Env env, const std::string& message) {
  Napi::TypeError error = Napi::TypeError::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  return error;
}

inline Napi::Error ArgumentRangeError(Napi::Env env, const std::string& message) {
  Napi::RangeError error = Napi::RangeError::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_OUT_OF_RANGE"));
  return error;
}

}  // namespace reuseport
