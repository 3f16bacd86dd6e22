// The active node's presence on the LAN, independent of the JS event loop.
//
// The active bridge answers ARP for the service address itself (the kernel
// holds the VIP dormant, ARP suppressed), so a dead bridge stops claiming
// the VIP and the peer can take over. Answered from the event loop, a
// CPU-starved but live primary missed the peer's split-brain probe and was
// taken over while it still ran. Here a thread of its own answers, with a
// packet socket bound to the LAN interface: starvation of the JS loop no
// longer silences it.
//
// It answers only while the loop is alive: JS calls touch() from a timer.
// When the loop has not touched it for `holdMs`, the thread stops
// answering and ends the process (exit code 4, one line on stderr): the
// peer then finds the VIP unclaimed and takes over, and this bridge can
// never resume beside it. A process that dies takes the thread with it.
//
// The same thread is the bridge's watchdog of its own event loop: a loop
// stuck for `holdMs` ends the process whatever the role, so a bridge that
// heartbeats always also runs.
//
// The thread runs at the bridge's real-time priority (realtime.h), and a
// socket filter hands it only ARP requests for the VIP: other ARP traffic on
// the LAN never wakes it. Each answer's delay, from the kernel's receipt of
// the request to the reply's send, is kept (the largest, and how many took
// over LATE_US): the peer's probe waits 50 ms.
#include <napi.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "realtime.h"

namespace {

constexpr int EXIT_STALLED = 4;
constexpr int ARP_FRAME = 42;  // Ethernet 14 + ARP 28
// An answer later than this counts as late (the peer's probe waits 50 ms).
constexpr int64_t LATE_US = 10000;

// Ethernet and ARP offsets the socket filter reads.
constexpr uint32_t OFF_ETHERTYPE = 12;
constexpr uint32_t OFF_ARP_OPER = 14 + 6;
constexpr uint32_t OFF_ARP_TPA = 14 + 24;
constexpr uint32_t ETHERTYPE_ARP = 0x0806;
constexpr uint32_t ARP_REQUEST = 1;

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int64_t RealtimeUs(const struct timespec& ts) { return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000; }

class Presence : public Napi::ObjectWrap<Presence> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "Presence",
                                      {
                                          InstanceMethod("touch", &Presence::Touch),
                                          InstanceMethod("setHold", &Presence::SetHold),
                                          InstanceMethod("setAnswering", &Presence::SetAnswering),
                                          InstanceMethod("stats", &Presence::Stats),
                                          InstanceMethod("close", &Presence::Close),
                                      });
    exports.Set("Presence", ctor);
  }

  // new Presence(ifname, vip (host order u32), mac: Buffer(6), holdMs, label)
  explicit Presence(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Presence>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsBuffer() || !info[3].IsNumber() || !info[4].IsString()) {
      Napi::TypeError::New(env, "Presence(ifname, vip, mac, holdMs, label)").ThrowAsJavaScriptException();
      return;
    }
    std::string ifname = info[0].As<Napi::String>();
    vip_ = htonl(info[1].As<Napi::Number>().Uint32Value());
    Napi::Buffer<uint8_t> mac = info[2].As<Napi::Buffer<uint8_t>>();
    if (mac.Length() != 6) {
      Napi::TypeError::New(env, "mac must be 6 bytes").ThrowAsJavaScriptException();
      return;
    }
    memcpy(mac_, mac.Data(), 6);
    hold_ms_ = info[3].As<Napi::Number>().Int64Value();
    label_ = info[4].As<Napi::String>();
    ifindex_ = if_nametoindex(ifname.c_str());
    if (!ifindex_) {
      Fail(env, ("no interface " + ifname).c_str());
      return;
    }
    fd_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP));
    if (fd_ < 0) {
      Fail(env, "socket(AF_PACKET)");
      return;
    }
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ARP);
    sll.sll_ifindex = static_cast<int>(ifindex_);
    // Only ARP requests for the VIP reach the thread (host-order VIP: the
    // filter's loads are in network order). Frames queued before the filter
    // are checked again below.
    const uint32_t vip_host = ntohl(vip_);
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, OFF_ETHERTYPE),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETHERTYPE_ARP, 0, 5),
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, OFF_ARP_OPER),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARP_REQUEST, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, OFF_ARP_TPA),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, vip_host, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0xffff),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    struct sock_fprog prog = {static_cast<unsigned short>(sizeof(code) / sizeof(code[0])), code};
    if (setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0) {
      Fail(env, "SO_ATTACH_FILTER");
      return;
    }
    int on = 1;
    if (setsockopt(fd_, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)) < 0) {
      Fail(env, "SO_TIMESTAMPNS");
      return;
    }
    if (bind(fd_, reinterpret_cast<struct sockaddr*>(&sll), sizeof(sll)) < 0) {
      Fail(env, "bind(AF_PACKET)");
      return;
    }
    last_touch_.store(NowMs());
    if (pthread_create(&thread_, nullptr, &Presence::Run, this) != 0) {
      Fail(env, "pthread_create");
      return;
    }
    running_ = true;
    rt_error_ = tcpfo::EnterRealtime(thread_);
  }

  ~Presence() override { Stop(); }

 private:
  void Fail(Napi::Env env, const char* what) {
    int e = errno;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    Napi::Error::New(env, std::string(what) + ": " + strerror(e)).ThrowAsJavaScriptException();
  }

  void Stop() {
    if (running_) {
      stop_.store(true);
      pthread_join(thread_, nullptr);
      running_ = false;
    }
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
  }

  static void* Run(void* arg) {
    static_cast<Presence*>(arg)->Loop();
    return nullptr;
  }

  void Loop() {
    uint8_t buf[1600];
    alignas(struct cmsghdr) uint8_t control[CMSG_SPACE(sizeof(struct timespec))];
    while (!stop_.load()) {
      int64_t silent = NowMs() - last_touch_.load();
      int64_t hold = hold_ms_.load();
      if (hold > 0 && silent > hold) Expire(silent, hold);
      struct pollfd p = {fd_, POLLIN, 0};
      int r = poll(&p, 1, 20);
      if (r <= 0) continue;
      struct iovec iov = {buf, sizeof(buf)};
      struct msghdr msg = {};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      ssize_t n = recvmsg(fd_, &msg, MSG_DONTWAIT);
      if (n < ARP_FRAME) continue;
      burst_.Count();
      int64_t received_us = -1;
      for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
          struct timespec ts;
          memcpy(&ts, CMSG_DATA(c), sizeof(ts));
          received_us = RealtimeUs(ts);
        }
      }
      // Ethernet type ARP; htype 1, ptype IPv4, hlen 6, plen 4, oper request.
      const uint8_t* a = buf + 14;
      if (buf[12] != 0x08 || buf[13] != 0x06 || a[0] != 0 || a[1] != 1 || a[2] != 0x08 || a[3] != 0 || a[4] != 6 || a[5] != 4 || a[6] != 0 || a[7] != 1) continue;
      uint32_t spa, tpa;
      memcpy(&spa, a + 14, 4);
      memcpy(&tpa, a + 24, 4);
      // A request for the VIP; not someone's own announcement of it.
      if (tpa != vip_ || spa == vip_) continue;
      requests_++;
      if (!answering_.load()) continue;
      int64_t hold2 = hold_ms_.load();
      if (hold2 > 0 && NowMs() - last_touch_.load() > hold2) continue;  // Expire() next turn
      uint8_t out[ARP_FRAME];
      memcpy(out, a + 8, 6);  // to the requester's hardware address
      memcpy(out + 6, mac_, 6);
      out[12] = 0x08;
      out[13] = 0x06;
      uint8_t* r2 = out + 14;
      memcpy(r2, a, 6);  // htype, ptype, hlen, plen
      r2[6] = 0;
      r2[7] = 2;  // reply
      memcpy(r2 + 8, mac_, 6);
      memcpy(r2 + 14, &vip_, 4);
      memcpy(r2 + 18, a + 8, 6);
      memcpy(r2 + 24, a + 14, 4);
      struct sockaddr_ll to;
      memset(&to, 0, sizeof(to));
      to.sll_family = AF_PACKET;
      to.sll_protocol = htons(ETH_P_ARP);
      to.sll_ifindex = static_cast<int>(ifindex_);
      to.sll_halen = 6;
      memcpy(to.sll_addr, a + 8, 6);
      if (sendto(fd_, out, sizeof(out), 0, reinterpret_cast<struct sockaddr*>(&to), sizeof(to)) != ARP_FRAME) {
        send_errors_++;
        continue;
      }
      replies_++;
      if (received_us >= 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        int64_t delay = RealtimeUs(now) - received_us;
        if (delay < 0) delay = 0;  // the wall clock stepped back
        if (delay > max_delay_us_.load()) max_delay_us_.store(delay);
        if (delay > LATE_US) late_++;
      }
    }
  }

  // The event loop is stuck: stop claiming the VIP and end the process, so
  // the peer takes over and this bridge cannot come back beside it.
  [[noreturn]] void Expire(int64_t silent, int64_t hold) {
    answering_.store(false);
    char line[320];
    int len = snprintf(line, sizeof(line),
                       "{\"level\":50,\"name\":\"%s\",\"pid\":%d,\"silentMs\":%lld,\"holdMs\":%lld,\"msg\":\"event loop stuck for %lld ms: "
                       "exiting so the peer takes over (liveness.loop_stall_ms)\"}\n",
                       label_.c_str(), static_cast<int>(getpid()), static_cast<long long>(silent), static_cast<long long>(hold),
                       static_cast<long long>(silent));
    if (len > 0) {
      ssize_t w = write(2, line, static_cast<size_t>(len < static_cast<int>(sizeof(line)) ? len : sizeof(line) - 1));
      (void)w;
    }
    _exit(EXIT_STALLED);
  }

  Napi::Value Touch(const Napi::CallbackInfo& info) {
    last_touch_.store(NowMs());
    return info.Env().Undefined();
  }

  // A new hold (ms), counted from now: the bridge's setup allows more than
  // its steady state (see io/presence.ts).
  Napi::Value SetHold(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsNumber()) {
      Napi::TypeError::New(info.Env(), "setHold(ms)").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    last_touch_.store(NowMs());
    hold_ms_.store(info[0].As<Napi::Number>().Int64Value());
    return info.Env().Undefined();
  }

  Napi::Value SetAnswering(const Napi::CallbackInfo& info) {
    answering_.store(info.Length() > 0 && info[0].ToBoolean().Value());
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("requests", Napi::Number::New(env, static_cast<double>(requests_.load())));
    o.Set("replies", Napi::Number::New(env, static_cast<double>(replies_.load())));
    o.Set("sendErrors", Napi::Number::New(env, static_cast<double>(send_errors_.load())));
    o.Set("answering", Napi::Boolean::New(env, answering_.load()));
    o.Set("maxDelayUs", Napi::Number::New(env, static_cast<double>(max_delay_us_.load())));
    o.Set("late", Napi::Number::New(env, static_cast<double>(late_.load())));
    o.Set("bursts", Napi::Number::New(env, static_cast<double>(burst_.pauses())));
    o.Set("rtError", Napi::Number::New(env, rt_error_));
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  uint32_t vip_ = 0;  // network order
  uint8_t mac_[6] = {};
  std::atomic<int64_t> hold_ms_{0};
  std::string label_;
  unsigned ifindex_ = 0;
  int fd_ = -1;
  pthread_t thread_{};
  bool running_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<bool> answering_{false};
  std::atomic<int64_t> last_touch_{0};
  std::atomic<uint64_t> requests_{0}, replies_{0}, send_errors_{0}, late_{0};
  std::atomic<int64_t> max_delay_us_{0};
  tcpfo::BurstLimit burst_;
  // EnterRealtime's result: -1 none configured, 0 done, else an errno.
  int rt_error_ = -1;
};

}  // namespace

void InitPresence(Napi::Env env, Napi::Object exports) { Presence::Init(env, exports); }
