// The heartbeat socket, read and written on a thread of its own.
//
// The failure detector judges the peer by how long it has not heard from it.
// Read from the event loop, a heartbeat that arrived while the loop was busy
// (a long queue callback, a collection) waited unread in the socket, and the
// loop's own stall looked like the peer's silence: a primary under a storm of
// connections declared its live secondary dead, and the connections of that
// moment went primary-only. Here a thread takes every datagram from the
// configured peer as it arrives, with its arrival time; the loop takes them
// all before it judges (take()), so only the peer's silence counts.
//
// Only datagrams from the peer's address and port are kept (the JS layer
// authenticates them); at most QUEUE_MAX wait, the newest beyond that are
// dropped and counted.
//
// Sending is the thread's too. Sent from the loop, a heartbeat waited for
// every stall of it: at 100,000 connections a secondary's loop held 174 ms,
// the primary declared it dead, and 1,122 connections lost their replica.
// The loop signs the coming heartbeats ahead (schedule(): a second's worth,
// the bridge's liveness.loop_stall_ms) and the thread sends one per
// interval. A loop that stops running stops renewing them: the thread falls
// silent when they run out, when the loop's watchdog (presence.cc) ends the
// process anyway. Each sent heartbeat's sequence number and time are kept
// for the detector's round-trip time (sent()). The thread runs at the
// bridge's real-time priority (realtime.h): an arrival time it takes late
// would look like silence, a heartbeat it sends late like death.
#include <napi.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "realtime.h"

namespace {

constexpr size_t QUEUE_MAX = 4096;
constexpr size_t DATAGRAM_MAX = 65536;
// At most this many signed heartbeats wait (a minute at 20 ms), and this many sends are remembered.
constexpr size_t PLAN_MAX = 3000;
constexpr size_t SENT_MAX = 64;
// Where the sequence number sits in a heartbeat (bridge/detector/heartbeat.ts).
constexpr size_t HB_SEQ = 8;
// The longest the thread sleeps in poll, ns.
constexpr int64_t IDLE_NS = 20000000;

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

struct Datagram {
  std::vector<uint8_t> data;
  int64_t at_ns;
};

struct Sent {
  uint8_t seq[8];
  int64_t at_ns;
};

class HeartbeatSocket : public Napi::ObjectWrap<HeartbeatSocket> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "HeartbeatSocket",
                                      {
                                          InstanceMethod("take", &HeartbeatSocket::Take),
                                          InstanceMethod("send", &HeartbeatSocket::Send),
                                          InstanceMethod("schedule", &HeartbeatSocket::Schedule),
                                          InstanceMethod("sent", &HeartbeatSocket::SentSince),
                                          InstanceMethod("stats", &HeartbeatSocket::Stats),
                                          InstanceMethod("close", &HeartbeatSocket::Close),
                                      });
    exports.Set("HeartbeatSocket", ctor);
  }

  // new HeartbeatSocket(selfAddress, port, peerAddress, peerPort, onReadable)
  explicit HeartbeatSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HeartbeatSocket>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsString() || !info[3].IsNumber() || !info[4].IsFunction()) {
      Napi::TypeError::New(env, "HeartbeatSocket(selfAddress, port, peerAddress, peerPort, onReadable)").ThrowAsJavaScriptException();
      return;
    }
    std::string self = info[0].As<Napi::String>();
    std::string peer = info[2].As<Napi::String>();
    uint32_t port = info[1].As<Napi::Number>().Uint32Value();
    uint32_t peer_port = info[3].As<Napi::Number>().Uint32Value();
    struct sockaddr_in local;
    memset(&local, 0, sizeof(local));
    local.sin_family = AF_INET;
    local.sin_port = htons(static_cast<uint16_t>(port));
    memset(&peer_, 0, sizeof(peer_));
    peer_.sin_family = AF_INET;
    peer_.sin_port = htons(static_cast<uint16_t>(peer_port));
    if (port == 0 || port > 65535 || peer_port == 0 || peer_port > 65535 || inet_pton(AF_INET, self.c_str(), &local.sin_addr) != 1 ||
        inet_pton(AF_INET, peer.c_str(), &peer_.sin_addr) != 1) {
      Napi::TypeError::New(env, "HeartbeatSocket: IPv4 addresses and ports 1-65535").ThrowAsJavaScriptException();
      return;
    }
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) {
      Fail(env, "socket");
      return;
    }
    if (bind(fd_, reinterpret_cast<struct sockaddr*>(&local), sizeof(local)) < 0) {
      Fail(env, ("bind " + self + ":" + std::to_string(port)).c_str());
      return;
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[4].As<Napi::Function>(), "tcpfo-heartbeat", 0, 1);
    if (pthread_create(&thread_, nullptr, &HeartbeatSocket::Run, this) != 0) {
      tsfn_.Release();
      Fail(env, "pthread_create");
      return;
    }
    running_ = true;
    rt_error_ = tcpfo::EnterRealtime(thread_);
  }

  ~HeartbeatSocket() override { Stop(); }

 private:
  void Fail(Napi::Env env, const char* what) {
    int e = errno;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    Napi::Error err = Napi::Error::New(env, std::string(what) + ": " + strerror(e));
    const char* code = e == EADDRINUSE ? "EADDRINUSE" : e == EADDRNOTAVAIL ? "EADDRNOTAVAIL" : e == EACCES ? "EACCES" : nullptr;
    if (code) err.Set("code", Napi::String::New(env, code));
    err.ThrowAsJavaScriptException();
  }

  void Stop() {
    if (running_) {
      stop_.store(true);
      pthread_join(thread_, nullptr);
      running_ = false;
      tsfn_.Release();
    }
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
  }

  static void* Run(void* arg) {
    static_cast<HeartbeatSocket*>(arg)->Loop();
    return nullptr;
  }

  void Loop() {
    std::vector<uint8_t> buf(DATAGRAM_MAX);
    while (!stop_.load()) {
      int64_t wait = SendDue();
      struct pollfd p = {fd_, POLLIN, 0};
      struct timespec ts = {static_cast<time_t>(wait / 1000000000), static_cast<long>(wait % 1000000000)};
      if (ppoll(&p, 1, &ts, nullptr) <= 0) continue;
      bool got = false;
      for (;;) {
        struct sockaddr_in from;
        socklen_t fromlen = sizeof(from);
        ssize_t n = recvfrom(fd_, buf.data(), buf.size(), MSG_DONTWAIT, reinterpret_cast<struct sockaddr*>(&from), &fromlen);
        if (n < 0) break;  // EAGAIN: all read (errors such as ECONNREFUSED after a send: nothing to keep)
        int64_t at = NowNs();
        burst_.Count();
        if (fromlen != sizeof(from) || from.sin_addr.s_addr != peer_.sin_addr.s_addr || from.sin_port != peer_.sin_port) {
          foreign_++;
          continue;
        }
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.size() >= QUEUE_MAX) {
          dropped_++;
          continue;
        }
        queue_.push_back(Datagram{std::vector<uint8_t>(buf.begin(), buf.begin() + n), at});
        got = true;
      }
      if (got && !notified_.exchange(true)) tsfn_.NonBlockingCall();
    }
  }

  // Sends the next planned heartbeat if its time has come; returns how long
  // the thread may sleep, ns. One per interval: after a late wake the cadence
  // starts again from now (no burst to catch up).
  int64_t SendDue() {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t now = NowNs();
    if (plan_.empty()) return IDLE_NS;
    if (now < next_due_) return std::min(next_due_ - now, IDLE_NS);
    const std::vector<uint8_t>& msg = plan_.front();
    if (sendto(fd_, msg.data(), msg.size(), MSG_DONTWAIT, reinterpret_cast<struct sockaddr*>(&peer_), sizeof(peer_)) < 0) {
      send_errors_++;
    } else if (msg.size() >= HB_SEQ + 8) {
      Sent s;
      memcpy(s.seq, msg.data() + HB_SEQ, 8);
      s.at_ns = now;
      sent_.push_back(s);
      if (sent_.size() > SENT_MAX) sent_.pop_front();
    }
    plan_.pop_front();
    next_due_ += interval_ns_;
    if (next_due_ <= now) next_due_ = now + interval_ns_;
    return plan_.empty() ? IDLE_NS : std::min(next_due_ - now, IDLE_NS);
  }

  // schedule([heartbeat, ...], intervalMs): the heartbeats to send from now
  // on, one per interval, in place of those still waiting. The cadence goes
  // on (the first is sent when the next one was due).
  Napi::Value Schedule(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsNumber()) {
      Napi::TypeError::New(env, "schedule(heartbeats: Buffer[], intervalMs)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Array arr = info[0].As<Napi::Array>();
    int64_t interval = info[1].As<Napi::Number>().Int64Value();
    if (interval < 1 || arr.Length() > PLAN_MAX) {
      Napi::RangeError::New(env, "schedule: intervalMs >= 1, at most 3000 heartbeats").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::deque<std::vector<uint8_t>> plan;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (!v.IsBuffer()) {
        Napi::TypeError::New(env, "schedule: heartbeats are Buffers").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      Napi::Buffer<uint8_t> b = v.As<Napi::Buffer<uint8_t>>();
      plan.emplace_back(b.Data(), b.Data() + b.Length());
    }
    std::lock_guard<std::mutex> lock(mu_);
    plan_.swap(plan);
    interval_ns_ = interval * 1000000;
    if (next_due_ == 0) next_due_ = NowNs();
    return env.Undefined();
  }

  // sent() -> [[seq (8-byte Buffer), ageMs], ...]: the heartbeats the thread
  // sent since the last call, oldest first (at most SENT_MAX).
  Napi::Value SentSince(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::deque<Sent> got;
    {
      std::lock_guard<std::mutex> lock(mu_);
      got.swap(sent_);
    }
    int64_t now = NowNs();
    Napi::Array out = Napi::Array::New(env, got.size());
    for (size_t i = 0; i < got.size(); i++) {
      Napi::Array pair = Napi::Array::New(env, 2);
      pair.Set(0u, Napi::Buffer<uint8_t>::Copy(env, got[i].seq, 8));
      pair.Set(1u, Napi::Number::New(env, static_cast<double>(now - got[i].at_ns) / 1e6));
      out.Set(static_cast<uint32_t>(i), pair);
    }
    return out;
  }

  // take() -> [[Buffer, ageMs], ...]: every datagram from the peer received
  // so far, oldest first, with how long ago it arrived.
  Napi::Value Take(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<Datagram> got;
    {
      std::lock_guard<std::mutex> lock(mu_);
      got.swap(queue_);
      notified_.store(false);
    }
    int64_t now = NowNs();
    Napi::Array out = Napi::Array::New(env, got.size());
    for (size_t i = 0; i < got.size(); i++) {
      Napi::Array pair = Napi::Array::New(env, 2);
      pair.Set(0u, Napi::Buffer<uint8_t>::Copy(env, got[i].data.data(), got[i].data.size()));
      pair.Set(1u, Napi::Number::New(env, static_cast<double>(now - got[i].at_ns) / 1e6));
      out.Set(static_cast<uint32_t>(i), pair);
    }
    return out;
  }

  // send(buffer) -> 0, or the errno of sendto (the detector decides what a
  // failed send means).
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0 || info.Length() < 1 || !info[0].IsBuffer()) return Napi::Number::New(env, EBADF);
    Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
    ssize_t r = sendto(fd_, b.Data(), b.Length(), MSG_DONTWAIT, reinterpret_cast<struct sockaddr*>(&peer_), sizeof(peer_));
    if (r < 0) {
      send_errors_++;
      return Napi::Number::New(env, errno);
    }
    return Napi::Number::New(env, 0);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("dropped", Napi::Number::New(env, static_cast<double>(dropped_.load())));
    o.Set("foreign", Napi::Number::New(env, static_cast<double>(foreign_.load())));
    o.Set("sendErrors", Napi::Number::New(env, static_cast<double>(send_errors_.load())));
    {
      std::lock_guard<std::mutex> lock(mu_);
      o.Set("planned", Napi::Number::New(env, static_cast<double>(plan_.size())));
    }
    o.Set("bursts", Napi::Number::New(env, static_cast<double>(burst_.pauses())));
    o.Set("rtError", Napi::Number::New(env, rt_error_));
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  struct sockaddr_in peer_;
  int fd_ = -1;
  pthread_t thread_{};
  bool running_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<bool> notified_{false};
  std::mutex mu_;
  std::vector<Datagram> queue_;
  Napi::ThreadSafeFunction tsfn_;
  std::atomic<uint64_t> dropped_{0}, foreign_{0}, send_errors_{0};
  // Guarded by mu_: the signed heartbeats still to send, the cadence, what was sent.
  std::deque<std::vector<uint8_t>> plan_;
  int64_t interval_ns_ = 20000000;
  int64_t next_due_ = 0;
  std::deque<Sent> sent_;
  tcpfo::BurstLimit burst_;
  // EnterRealtime's result: -1 none configured, 0 done, else an errno.
  int rt_error_ = -1;
};

}  // namespace

void InitHeartbeat(Napi::Env env, Napi::Object exports) { HeartbeatSocket::Init(env, exports); }
