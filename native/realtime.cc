// allowRealtime(priority): the priority the bridge's ARP and heartbeat
// threads take (realtime.h), and RLIMIT_RTTIME, which bounds how long a
// real-time thread may run without blocking: a bug that spins ends the
// process (SIGXCPU) and the peer takes over; it never holds a core.
// Entering the priority needs CAP_SYS_NICE, which the bridge keeps while a
// priority is configured (io/caps.ts): a thread started after setup (a role
// change) enters it too.
#include <napi.h>

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include <string>

#include "realtime.h"

namespace tcpfo {
std::atomic<int> realtime_priority{0};
}

namespace {

constexpr rlim_t RTTIME_SOFT_US = 200000;
constexpr rlim_t RTTIME_HARD_US = 400000;

// allowRealtime(priority 0-99) -> '' or what failed (then no thread enters
// a real-time priority).
Napi::Value AllowRealtime(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "allowRealtime(priority)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int prio = info[0].As<Napi::Number>().Int32Value();
  if (prio < 0 || prio > 99) {
    Napi::RangeError::New(env, "priority must be 0-99").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  tcpfo::realtime_priority.store(prio);
  if (prio == 0) return Napi::String::New(env, "");
  // Lowered only (a limit the operator set stays): never needs a privilege.
  struct rlimit r;
  if (getrlimit(RLIMIT_RTTIME, &r) == 0 && r.rlim_cur == RLIM_INFINITY) {
    struct rlimit want = {RTTIME_SOFT_US, r.rlim_max < RTTIME_HARD_US ? r.rlim_max : RTTIME_HARD_US};
    if (setrlimit(RLIMIT_RTTIME, &want) != 0) {
      // Unbounded, a spinning real-time thread could hold a core: none then.
      tcpfo::realtime_priority.store(0);
      return Napi::String::New(env, std::string("RLIMIT_RTTIME: ") + strerror(errno));
    }
  }
  return Napi::String::New(env, "");
}

}  // namespace

void InitRealtime(Napi::Env env, Napi::Object exports) { exports.Set("allowRealtime", Napi::Function::New(env, AllowRealtime)); }
