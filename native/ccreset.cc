// Loads the congestion reset (native/ccreset.bpf.c), a tcp iterator, and
// runs it for JS a bounded number of connections at a time. Loading needs
// the privileges a bridge has before it limits them (a tracing program);
// running it later needs only the link this keeps.
#include <napi.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <vector>

extern "C" {
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
}

#include "bpf/ccreset.h"

namespace {

int LibbpfQuiet(enum libbpf_print_level, const char*, va_list) { return 0; }

class CcReset : public Napi::ObjectWrap<CcReset> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "CcReset",
                                      {
                                          InstanceMethod("begin", &CcReset::Begin),
                                          InstanceMethod("next", &CcReset::Next),
                                          InstanceMethod("close", &CcReset::Close),
                                      });
    exports.Set("CcReset", ctor);
  }

  // new CcReset(objectPath, serviceAddr, ports[, serviceAddr6]): ports as [lo, hi] pairs
  // (inclusive); the IPv6 service address, if any, as its 16 bytes.
  explicit CcReset(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CcReset>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsArray() ||
        (info.Length() > 3 && !info[3].IsUndefined() &&
         (!info[3].IsBuffer() || info[3].As<Napi::Buffer<uint8_t>>().Length() != 16))) {
      Napi::TypeError::New(env, "CcReset(objectPath, serviceAddr, [[lo, hi], …][, serviceAddr6 (16 bytes)])")
          .ThrowAsJavaScriptException();
      return;
    }
    std::string path = info[0].As<Napi::String>();
    struct cc_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.service = htonl(info[1].As<Napi::Number>().Uint32Value());
    if (info.Length() > 3 && info[3].IsBuffer()) memcpy(cfg.service6, info[3].As<Napi::Buffer<uint8_t>>().Data(), 16);
    Napi::Array ranges = info[2].As<Napi::Array>();
    for (uint32_t i = 0; i < ranges.Length(); i++) {
      Napi::Value r = ranges.Get(i);
      if (!r.IsArray() || r.As<Napi::Array>().Length() != 2) {
        Napi::TypeError::New(env, "CcReset: a port range is [lo, hi]").ThrowAsJavaScriptException();
        return;
      }
      uint32_t lo = r.As<Napi::Array>().Get(0u).As<Napi::Number>().Uint32Value();
      uint32_t hi = r.As<Napi::Array>().Get(1u).As<Napi::Number>().Uint32Value();
      for (uint32_t p = lo; p <= hi && p < 65536; p++) cfg.ports[p >> 6] |= 1ull << (p & 63);
    }
    libbpf_set_print(LibbpfQuiet);
    obj_ = bpf_object__open_file(path.c_str(), nullptr);
    if (!obj_ || libbpf_get_error(obj_)) {
      obj_ = nullptr;
      Fail(env, ("cannot open " + path).c_str(), errno);
      return;
    }
    int err = bpf_object__load(obj_);
    if (err) { Fail(env, "cannot load the tcp iterator (Linux 5.15 on, with BTF)", -err); return; }
    struct bpf_map* map = bpf_object__find_map_by_name(obj_, "cc_cfg");
    uint32_t zero = 0;
    if (!map || bpf_map_update_elem(bpf_map__fd(map), &zero, &cfg, BPF_ANY) != 0) {
      Fail(env, "cannot configure the tcp iterator", map ? errno : ENOENT);
      return;
    }
    cfg_fd_ = bpf_map__fd(map);
    cfg_ = cfg;
    struct bpf_program* prog = bpf_object__find_program_by_name(obj_, "tcpfo_cc_reset");
    link_ = prog ? bpf_program__attach_iter(prog, nullptr) : nullptr;
    if (!link_ || libbpf_get_error(link_)) {
      link_ = nullptr;
      Fail(env, "cannot attach the tcp iterator", prog ? errno : ENOENT);
      return;
    }
  }

  ~CcReset() { Teardown(); }

 private:
  // begin(mode = CC_ALL): a new pass over this network namespace's TCP sockets, resetting every
  // connection of the service (CC_ALL) or those whose client's window reopened (CC_REOPENED).
  Napi::Value Begin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!link_) { Fail(env, "the congestion reset is closed", EBADF); return env.Undefined(); }
    uint32_t mode = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : static_cast<uint32_t>(CC_ALL);
    if (mode != CC_ALL && mode != CC_REOPENED) {
      Napi::RangeError::New(env, "begin: mode is 0 (every connection) or 1 (window reopened)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (mode != cfg_.mode) {
      cfg_.mode = mode;
      uint32_t zero = 0;
      if (bpf_map_update_elem(cfg_fd_, &zero, &cfg_, BPF_ANY) != 0) {
        Fail(env, "cannot configure the tcp iterator", errno);
        return env.Undefined();
      }
    }
    if (iter_ >= 0) close(iter_);
    iter_ = bpf_iter_create(bpf_link__fd(link_));
    if (iter_ < 0) Fail(env, "cannot start the tcp iterator", errno);
    return env.Undefined();
  }

  // next(max): up to `max` records of connections reset — [{client, cport, sport, err}], client an
  // IPv4 address's number or an IPv6 one's hex —
  // or null once the pass is over. The kernel visits sockets a page of output at a time.
  Napi::Value Next(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (iter_ < 0) return env.Null();
    uint32_t max = info.Length() > 0 ? info[0].As<Napi::Number>().Uint32Value() : 256;
    if (max == 0) max = 1;
    std::vector<struct cc_record> recs(max);
    size_t want = max * sizeof(struct cc_record), got = 0;
    char* buf = reinterpret_cast<char*>(recs.data());
    while (got < want) {
      ssize_t n = read(iter_, buf + got, want - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int e = errno;
        close(iter_);
        iter_ = -1;
        Fail(env, "reading the tcp iterator", e);
        return env.Undefined();
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
      if (got % sizeof(struct cc_record) == 0) break;  // a page's worth: give the event loop its turn
    }
    if (got == 0) {
      close(iter_);
      iter_ = -1;
      return env.Null();
    }
    size_t count = got / sizeof(struct cc_record);
    Napi::Array out = Napi::Array::New(env, count);
    for (size_t i = 0; i < count; i++) {
      Napi::Object o = Napi::Object::New(env);
      if (recs[i].family == AF_INET6) {
        // An IPv6 peer as the cores carry it (net/addr.ts IpAddr): its 16 bytes in lower-case hex.
        static const char kHex[] = "0123456789abcdef";
        const auto* b = reinterpret_cast<const uint8_t*>(recs[i].client6);
        std::string hex(32, '0');
        for (int j = 0; j < 16; j++) {
          hex[2 * j] = kHex[b[j] >> 4];
          hex[2 * j + 1] = kHex[b[j] & 15];
        }
        o.Set("client", Napi::String::New(env, hex));
      } else {
        o.Set("client", Napi::Number::New(env, ntohl(recs[i].client)));
      }
      o.Set("cport", Napi::Number::New(env, ntohs(recs[i].cport)));
      o.Set("sport", Napi::Number::New(env, recs[i].sport));
      o.Set("err", Napi::Number::New(env, recs[i].err));
      out.Set(i, o);
    }
    return out;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Teardown();
    return info.Env().Undefined();
  }

  void Fail(Napi::Env env, const char* what, int e) {
    Teardown();
    Napi::Error::New(env, std::string(what) + ": " + strerror(e)).ThrowAsJavaScriptException();
  }

  void Teardown() {
    if (iter_ >= 0) close(iter_);
    iter_ = -1;
    if (link_) bpf_link__destroy(link_);
    link_ = nullptr;
    if (obj_) bpf_object__close(obj_);
    obj_ = nullptr;
  }

  struct bpf_object* obj_ = nullptr;
  struct bpf_link* link_ = nullptr;
  int iter_ = -1;
  int cfg_fd_ = -1;  // the object's cc_cfg (closed with it)
  struct cc_cfg cfg_ = {};
};

}  // namespace

void InitCcReset(Napi::Env env, Napi::Object exports) { CcReset::Init(env, exports); }
