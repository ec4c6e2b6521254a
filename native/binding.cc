// Node-API boundary: checks and converts arguments, calls socket.h, turns failures into JS errors.
#include <napi.h>

#include <cmath>
#include <limits>

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
                                std::to_string(static_cast<long long>(min)) + " and <= " +
                                std::to_string(static_cast<long long>(max)))
        .ThrowAsJavaScriptException();
    return false;
  }
  *out = static_cast<int>(number);
  return true;
}

bool ReadBoolean(Napi::Env env, Napi::Object options, const char* name, bool fallback,
                 bool* out) {
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

// openListener({ address, port, ipv6Only?, listen?, backlog? }) -> { fd, family, address, port }
Napi::Value OpenListenerJs(const Napi::CallbackInfo& info) {
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
      !ReadBoolean(env, options, "ipv6Only", false, &spec.ipv6_only) ||
      !ReadBoolean(env, options, "listen", true, &spec.listen)) {
    return env.Undefined();
  }
  Napi::Value backlog;
  if (!ReadProperty(env, options, "backlog", &backlog)) return env.Undefined();
  if (spec.listen && !backlog.IsUndefined() &&
      !ReadInteger(env, options, "backlog", 0, std::numeric_limits<int>::max(), &spec.backlog)) {
    return env.Undefined();
  }

  BoundSocket bound;
  SocketFailure failure;
  if (!OpenListener(spec, &bound, &failure)) {
    SystemError(env, failure.err, failure.syscall, spec.address, spec.port)
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", Napi::Number::New(env, bound.fd));
  result.Set("family", Napi::Number::New(env, bound.family));
  result.Set("address", Napi::String::New(env, bound.address));
  result.Set("port", Napi::Number::New(env, bound.port));
  return result;
}

// probeReusePort() -> 0 when the kernel accepts SO_REUSEPORT on TCP, else a negative errno.
Napi::Value ProbeReusePortJs(const Napi::CallbackInfo& info) {
  int err = ProbeReusePort();
  return Napi::Number::New(info.Env(), -err);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("openListener", Napi::Function::New(env, OpenListenerJs, "openListener"));
  exports.Set("probeReusePort", Napi::Function::New(env, ProbeReusePortJs, "probeReusePort"));
  return exports;
}

}  // namespace
}  // namespace reuseport

static Napi::Object InitReusePort(Napi::Env env, Napi::Object exports) {
  return reuseport::Init(env, exports);
}

NODE_API_MODULE(reuseport, InitReusePort)
