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
// authenticates them; a heartbeat's MAC is checked here, on this thread); at
// most QUEUE_MAX wait, the newest beyond that are dropped and counted.
//
// Sending is the thread's too. Sent from the loop, a heartbeat waited for
// every stall of it: at 100,000 connections a secondary's loop held 174 ms,
// the primary declared it dead, and 1,122 connections lost their replica.
// Every interval the loop hands the thread the next heartbeat as a template
// and how many to send from it (plan(): a second's worth, the bridge's
// liveness.loop_stall_ms); the thread sends one per interval, each the
// template with the next sequence number, signed here (HMAC-SHA256 under the
// link's key, as bridge/detector/heartbeat.ts signs). A loop that stops
// running stops renewing the plan: the thread falls silent when it runs
// out, when the loop's watchdog (presence.cc) ends the process anyway. The
// loop once signed the whole second ahead itself, every interval: 51 HMACs
// per 20 ms, 0.8 % of a core (bench/micro/heartbeat-cost.ts). Each sent
// heartbeat's sequence number and time are kept for the detector's
// round-trip time (sent()). The thread runs at the bridge's real-time
// priority (realtime.h): an arrival time it takes late would look like
// silence, a heartbeat it sends late like death.
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

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "realtime.h"

namespace {

constexpr size_t QUEUE_MAX = 4096;
constexpr size_t DATAGRAM_MAX = 65536;
// At most this many heartbeats are planned (a minute at 20 ms), and this many sends are remembered.
constexpr uint32_t PLAN_MAX = 3000;
constexpr size_t SENT_MAX = 64;
constexpr size_t MAC_LEN = 32;
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
  // A datagram of the heartbeat's length: whether its MAC is right under the
  // link's key (1) or not (0), checked here; -1 for any other length (the
  // JS layer checks those: notices, switch messages).
  int8_t mac_ok;
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
                                          InstanceMethod("plan", &HeartbeatSocket::Plan),
                                          InstanceMethod("sent", &HeartbeatSocket::SentSince),
                                          InstanceMethod("stats", &HeartbeatSocket::Stats),
                                          InstanceMethod("close", &HeartbeatSocket::Close),
                                      });
    exports.Set("HeartbeatSocket", ctor);
  }

  // new HeartbeatSocket(selfAddress, port, peerAddress, peerPort, onReadable, {key, seqAt, macAt, length})
  // The last: how the thread signs (bridge/detector/heartbeat.ts's layout): the
  // 8-byte big-endian sequence number at seqAt, HMAC-SHA256 of bytes 0..macAt
  // at macAt, `length` bytes in all.
  explicit HeartbeatSocket(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HeartbeatSocket>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 6 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsString() || !info[3].IsNumber() || !info[4].IsFunction() ||
        !info[5].IsObject()) {
      Napi::TypeError::New(env, "HeartbeatSocket(selfAddress, port, peerAddress, peerPort, onReadable, {key, seqAt, macAt, length})").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object signer = info[5].As<Napi::Object>();
    Napi::Value key = signer.Get("key");
    Napi::Value seq_at = signer.Get("seqAt"), mac_at = signer.Get("macAt"), length = signer.Get("length");
    if (!key.IsBuffer() || !seq_at.IsNumber() || !mac_at.IsNumber() || !length.IsNumber()) {
      Napi::TypeError::New(env, "HeartbeatSocket: {key: Buffer, seqAt, macAt, length}").ThrowAsJavaScriptException();
      return;
    }
    Napi::Buffer<uint8_t> k = key.As<Napi::Buffer<uint8_t>>();
    key_.assign(k.Data(), k.Data() + k.Length());
    seq_at_ = seq_at.As<Napi::Number>().Uint32Value();
    mac_at_ = mac_at.As<Napi::Number>().Uint32Value();
    length_ = length.As<Napi::Number>().Uint32Value();
    if (key_.empty() || seq_at_ + 8 > mac_at_ || mac_at_ + MAC_LEN != length_) {
      Napi::RangeError::New(env, "HeartbeatSocket: a key, and seqAt + 8 <= macAt, macAt + 32 == length").ThrowAsJavaScriptException();
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
        int8_t mac_ok = static_cast<size_t>(n) == length_ ? MacValid(buf.data()) : -1;
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.size() >= QUEUE_MAX) {
          dropped_++;
          continue;
        }
        queue_.push_back(Datagram{std::vector<uint8_t>(buf.begin(), buf.begin() + n), at, mac_ok});
        got = true;
      }
      if (got && !notified_.exchange(true)) tsfn_.NonBlockingCall();
    }
  }

  // Whether a heartbeat-length datagram carries the right MAC at mac_at_
  // (HMAC-SHA256 of the bytes before it under the link's key), compared in
  // constant time. Here rather than on the event loop: a Node HMAC per
  // heartbeat was a fifth of an idle bridge's loop.
  int8_t MacValid(const uint8_t* d) const {
    uint8_t mac[MAC_LEN];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), d, mac_at_, mac, &mac_len) || mac_len != MAC_LEN) return 0;
    return CRYPTO_memcmp(mac, d + mac_at_, MAC_LEN) == 0 ? 1 : 0;
  }

  // Sends the next planned heartbeat if its time has come; returns how long
  // the thread may sleep, ns. One per interval: after a late wake the cadence
  // starts again from now (no burst to catch up).
  int64_t SendDue() {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t now = NowNs();
    if (plan_left_ == 0) return IDLE_NS;
    if (now < next_due_) return std::min(next_due_ - now, IDLE_NS);
    uint64_t seq = plan_seq_++;
    for (int i = 7; i >= 0; i--) template_[seq_at_ + i] = static_cast<uint8_t>(seq >> (8 * (7 - i)));
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), template_.data(), mac_at_, template_.data() + mac_at_, &mac_len) ||
        mac_len != MAC_LEN) {
      send_errors_++;
    } else if (sendto(fd_, template_.data(), template_.size(), MSG_DONTWAIT, reinterpret_cast<struct sockaddr*>(&peer_), sizeof(peer_)) < 0) {
      send_errors_++;
    } else {
      Sent s;
      memcpy(s.seq, template_.data() + seq_at_, 8);
      s.at_ns = now;
      sent_.push_back(s);
      if (sent_.size() > SENT_MAX) sent_.pop_front();
    }
    plan_left_--;
    next_due_ += interval_ns_;
    if (next_due_ <= now) next_due_ = now + interval_ns_;
    return plan_left_ == 0 ? IDLE_NS : std::min(next_due_ - now, IDLE_NS);
  }

  // plan(heartbeat, count, intervalMs): from now on send `count` heartbeats,
  // one per interval, each `heartbeat` with the next sequence number (its
  // own first, then one more each), signed; in place of the plan before. The
  // cadence goes on (the first is sent when the next one was due).
  Napi::Value Plan(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsBuffer() || !info[1].IsNumber() || !info[2].IsNumber()) {
      Napi::TypeError::New(env, "plan(heartbeat: Buffer, count, intervalMs)").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
    uint32_t count = info[1].As<Napi::Number>().Uint32Value();
    int64_t interval = info[2].As<Napi::Number>().Int64Value();
    if (b.Length() != length_ || interval < 1 || count > PLAN_MAX) {
      Napi::RangeError::New(env, "plan: a heartbeat of the configured length, intervalMs >= 1, at most 3000").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    uint64_t first = 0;
    for (size_t i = 0; i < 8; i++) first = (first << 8) | b.Data()[seq_at_ + i];
    std::lock_guard<std::mutex> lock(mu_);
    template_.assign(b.Data(), b.Data() + b.Length());
    plan_seq_ = first;
    plan_left_ = count;
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

  // take() -> [[Buffer, ageMs, macOk?], ...]: every datagram from the peer
  // received so far, oldest first, with how long ago it arrived and, for one
  // of the heartbeat's length, whether its MAC is right.
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
      Napi::Array entry = Napi::Array::New(env, got[i].mac_ok < 0 ? 2 : 3);
      entry.Set(0u, Napi::Buffer<uint8_t>::Copy(env, got[i].data.data(), got[i].data.size()));
      entry.Set(1u, Napi::Number::New(env, static_cast<double>(now - got[i].at_ns) / 1e6));
      if (got[i].mac_ok >= 0) entry.Set(2u, Napi::Boolean::New(env, got[i].mac_ok == 1));
      out.Set(static_cast<uint32_t>(i), entry);
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
      o.Set("planned", Napi::Number::New(env, static_cast<double>(plan_left_)));
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
  // How heartbeats are signed: the key, where the sequence number and the MAC sit, the length.
  std::vector<uint8_t> key_;
  size_t seq_at_ = 0, mac_at_ = 0, length_ = 0;
  // Guarded by mu_: the plan (the heartbeat to send, its next sequence
  // number, how many more), the cadence, what was sent.
  std::vector<uint8_t> template_;
  uint64_t plan_seq_ = 0;
  uint32_t plan_left_ = 0;
  int64_t interval_ns_ = 20000000;
  int64_t next_due_ = 0;
  std::deque<Sent> sent_;
  tcpfo::BurstLimit burst_;
  // EnterRealtime's result: -1 none configured, 0 done, else an errno.
  int rt_error_ = -1;
};

}  // namespace

void InitHeartbeat(Napi::Env env, Napi::Object exports) { HeartbeatSocket::Init(env, exports); }
