// The one place that builds JS errors: OS failures shaped like Node's own, and argument errors.
#pragma once

#include <napi.h>
#include <uv.h>

#include <string>

namespace reuseport {

// An Error like Node's `ExceptionWithHostPort`: code ('EADDRINUSE'), errno (negative, as Node's),
// syscall, address and port, with Node's message format "bind EADDRINUSE: address already in use 127.0.0.1:80".
inline Napi::Error SystemError(Napi::Env env, int err, const char* syscall,
                               const std::string& address, int port) {
  const int uv_code = uv_translate_sys_error(err);
  const char* code = uv_err_name(uv_code);
  std::string message = std::string(syscall) + " " + code + ": " + uv_strerror(uv_code) + " " +
                        address + ":" + std::to_string(port);
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object object = error.Value();
  object.Set("errno", Napi::Number::New(env, uv_code));
  object.Set("code", Napi::String::New(env, code));
  object.Set("syscall", Napi::String::New(env, syscall));
  object.Set("address", Napi::String::New(env, address));
  object.Set("port", Napi::Number::New(env, port));
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
