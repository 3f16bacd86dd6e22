// Capability limiting for the bridge daemons (issue 8 §5): after setup, the
// process keeps only the capabilities it still uses (CAP_NET_ADMIN for rule,
// address and link changes at takeover and stop; CAP_NET_RAW for raw
// sockets), drops every other one from its bounding set (so no child can
// regain them), raises the kept ones as ambient (so the `ip`/`iptables`
// children it runs keep working) and sets no_new_privs. No libcap: the
// syscalls directly.
#include <napi.h>
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <fstream>
#include <string>

namespace {

int LastCap() {
  std::ifstream f("/proc/sys/kernel/cap_last_cap");
  int n = 40;
  if (f) f >> n;
  return n;
}

Napi::Value Fail(Napi::Env env, const char* what) {
  Napi::Error::New(env, std::string(what) + ": " + strerror(errno)).ThrowAsJavaScriptException();
  return env.Undefined();
}

// limitCapabilities(keep: number[]) -> { effective, permitted, bounding } (hex strings)
Napi::Value LimitCapabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) {
    Napi::TypeError::New(env, "limitCapabilities(keep: number[])").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array arr = info[0].As<Napi::Array>();
  uint64_t keep = 0;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    int c = arr.Get(i).As<Napi::Number>().Int32Value();
    if (c < 0 || c > 63) {
      Napi::RangeError::New(env, "capability number out of range").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    keep |= 1ULL << c;
  }
  const int last = LastCap();
  for (int c = 0; c <= last; c++) {
    if (keep & (1ULL << c)) continue;
    // EPERM: no CAP_SETPCAP (some containers): the bounding set stays as it
    // is; the caller sees it in the result and says so.
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL && errno != EPERM) return Fail(env, "PR_CAPBSET_DROP");
  }
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capget, &hdr, data) < 0) return Fail(env, "capget");
  uint64_t permitted = (uint64_t(data[1].permitted) << 32 | data[0].permitted) & keep;
  for (int w = 0; w < 2; w++) {
    uint32_t v = uint32_t(permitted >> (32 * w));
    data[w].permitted = v;
    data[w].effective = v;
    data[w].inheritable = v;
  }
  if (syscall(SYS_capset, &hdr, data) < 0) return Fail(env, "capset");
  for (int c = 0; c <= last; c++) {
    if (!(permitted & (1ULL << c))) continue;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0) return Fail(env, "PR_CAP_AMBIENT_RAISE");
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return Fail(env, "PR_SET_NO_NEW_PRIVS");
  uint64_t bounding = 0;
  for (int c = 0; c <= last; c++) {
    if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1) bounding |= 1ULL << c;
  }
  Napi::Object out = Napi::Object::New(env);
  char buf[32];
  snprintf(buf, sizeof buf, "%016llx", (unsigned long long)permitted);
  out.Set("permitted", buf);
  out.Set("effective", buf);
  snprintf(buf, sizeof buf, "%016llx", (unsigned long long)bounding);
  out.Set("bounding", buf);
  return out;
}

}  // namespace

void InitCaps(Napi::Env env, Napi::Object exports) {
  exports.Set("limitCapabilities", Napi::Function::New(env, LimitCapabilities));
}
