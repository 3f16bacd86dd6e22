// NFQUEUE binding for tcpfo: one netlink socket per queue, one uv_poll on it,
// and one JS call per drained batch of packets.
//
// Why this shape (DESIGN.md, measured on the 2-core machine): a JS call and a
// Buffer per packet caps out near 80k packets/s; draining the socket until
// EAGAIN and handing JS one contiguous copy plus a Uint32Array of metadata per
// batch, with batch verdicts, reaches about 200k packets/s.
//
// Batch handed to JS: onBatch(data, meta, count)
//   data: Buffer  — the packets' bytes, at the offsets meta gives
//   meta: Uint32Array, META_WORDS words per packet (count packets):
//     [id, offset, length, mark, hook, indev, outdev, skbinfo, hwlen, mac0..3, mac4..5]
//
// By default every batch is a new copy: the packets back to back in a new
// Buffer. With reuseBuffer the socket is read straight into one Buffer of
// maxBatch message slots, made once, and the same Buffer and metadata array
// go to every batch: no copy and no allocation per batch. At 1 Gbit/s a new
// buffer per batch was 600 MB of external memory in 8 s on the primary, and
// V8 answered it with a full collection every 120 ms. The price is the
// contract: nothing may keep a view of a packet past its batch's callback
// (what is held is copied). With poison, each packet's bytes are overwritten
// after its callback, so a view kept by mistake reads garbage in tests.
#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <linux/netfilter.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <libnfnetlink/libnfnetlink.h>
}

#ifndef NETLINK_NO_ENOBUFS
#define NETLINK_NO_ENOBUFS 5
#endif
#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

void InitCaps(Napi::Env env, Napi::Object exports);  // native/caps.cc
void InitFds(Napi::Env env, Napi::Object exports);   // native/fds.cc
void InitPresence(Napi::Env env, Napi::Object exports);  // native/presence.cc
void InitXlate(Napi::Env env, Napi::Object exports);     // native/xlate.cc
void InitSystemd(Napi::Env env, Napi::Object exports);   // native/systemd.cc
void InitLock(Napi::Env env, Napi::Object exports);      // native/lock.cc
void InitHeartbeat(Napi::Env env, Napi::Object exports); // native/heartbeat.cc
void InitSockDiag(Napi::Env env, Napi::Object exports);  // native/sockdiag.cc
void InitRealtime(Napi::Env env, Napi::Object exports);  // native/realtime.cc
void InitCcReset(Napi::Env env, Napi::Object exports);   // native/ccreset.cc

namespace {

constexpr uint32_t META_WORDS = 11;
// One netlink message carries one packet: up to 64 KB with F_GSO, plus attributes.
constexpr size_t MSG_BUF = 68 * 1024;
// Messages fetched per recvmmsg(2): one syscall for many packets.
constexpr unsigned MMSG = 64;
// reuseBuffer: message slots kept for the shared Buffer (maxBatch), at most (68 MB).
constexpr uint32_t MAX_REUSED_SLOTS = 1024;
// What a packet's bytes become after its batch with poison.
constexpr int POISON_BYTE = 0xa5;

class NfQueue : public Napi::ObjectWrap<NfQueue> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "NfQueue",
                                      {
                                          InstanceMethod("verdict", &NfQueue::Verdict),
                                          InstanceMethod("verdictBatch", &NfQueue::VerdictBatch),
                                          InstanceMethod("stats", &NfQueue::Stats),
                                          InstanceMethod("readable", &NfQueue::Readable),
                                          InstanceMethod("deafen", &NfQueue::Deafen),
                                          InstanceMethod("close", &NfQueue::Close),
                                      });
    exports.Set("NfQueue", ctor);
    exports.Set("META_WORDS", Napi::Number::New(env, META_WORDS));
    return exports;
  }

  // new NfQueue(queueNum, { copyRange, maxLen, gso, failOpen, rcvbuf, maxBatch, reuseBuffer, poison }, onBatch)
  explicit NfQueue(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NfQueue>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsObject() || !info[2].IsFunction()) {
      Napi::TypeError::New(env, "NfQueue(queueNum, options, onBatch)").ThrowAsJavaScriptException();
      return;
    }
    queue_num_ = info[0].As<Napi::Number>().Uint32Value();
    Napi::Object opts = info[1].As<Napi::Object>();
    auto num = [&](const char* k, uint32_t def) {
      Napi::Value v = opts.Get(k);
      return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : def;
    };
    auto flag = [&](const char* k) {
      Napi::Value v = opts.Get(k);
      return v.IsBoolean() && v.As<Napi::Boolean>().Value();
    };
    uint32_t copy_range = num("copyRange", 0xffff);
    uint32_t max_len = num("maxLen", 4096);
    uint32_t rcvbuf = num("rcvbuf", 8 * 1024 * 1024);
    max_batch_ = num("maxBatch", 64);
    bool gso = flag("gso");
    bool fail_open = flag("failOpen");
    reuse_ = flag("reuseBuffer");
    poison_ = reuse_ && flag("poison");
    if (max_batch_ < 1 || (reuse_ && max_batch_ > MAX_REUSED_SLOTS)) {
      Napi::RangeError::New(env, "maxBatch out of range").ThrowAsJavaScriptException();
      return;
    }
    callback_ = Napi::Persistent(info[2].As<Napi::Function>());

    h_ = nfq_open();
    if (!h_) { Fail(env, "nfq_open"); return; }
    qh_ = nfq_create_queue(h_, queue_num_, &NfQueue::OnPacket, this);
    if (!qh_) { Fail(env, "nfq_create_queue (is another process bound to this queue number?)"); return; }
    if (nfq_set_mode(qh_, NFQNL_COPY_PACKET, copy_range) < 0) { Fail(env, "nfq_set_mode"); return; }
    if (nfq_set_queue_maxlen(qh_, max_len) < 0) { Fail(env, "nfq_set_queue_maxlen"); return; }
    uint32_t flags = (gso ? NFQA_CFG_F_GSO : 0) | (fail_open ? NFQA_CFG_F_FAIL_OPEN : 0);
    uint32_t mask = NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN;
    if (nfq_set_queue_flags(qh_, mask, flags) < 0) { Fail(env, "nfq_set_queue_flags"); return; }
    fd_ = nfq_fd(h_);
    nfnl_rcvbufsiz(nfq_nfnlh(h_), rcvbuf);
    // Report ENOBUFS (kernel dropped messages for us) so we can count it.
    int off = 0;
    setsockopt(fd_, SOL_NETLINK, NETLINK_NO_ENOBUFS, &off, sizeof(off));

    // Message slots: MMSG reused per recvmmsg(2), or (reuseBuffer) maxBatch
    // filled in turn within one drain, in the Buffer JS reads.
    size_t slots = reuse_ ? max_batch_ : MMSG;
    uint8_t* base;
    if (reuse_) {
      Napi::Buffer<uint8_t> data = Napi::Buffer<uint8_t>::New(env, slots * MSG_BUF);
      Napi::Uint32Array meta = Napi::Uint32Array::New(env, slots * META_WORDS);
      shared_data_ = Napi::Persistent(data);
      shared_meta_ = Napi::Persistent(meta);
      base = data.Data();
      meta_out_ = meta.Data();
    } else {
      recv_buf_.resize(slots * MSG_BUF);
      base = recv_buf_.data();
    }
    slots_base_ = base;
    iov_.resize(slots);
    msgs_.resize(slots);
    for (size_t i = 0; i < slots; i++) {
      iov_[i].iov_base = base + i * MSG_BUF;
      iov_[i].iov_len = MSG_BUF;
      memset(&msgs_[i], 0, sizeof(msgs_[i]));
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
    }
    poll_ = new uv_poll_t;
    poll_->data = this;
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    if (uv_poll_init(loop, poll_, fd_) != 0) {
      delete poll_;
      poll_ = nullptr;
      { Fail(env, "uv_poll_init"); return; }
    }
    uv_poll_start(poll_, UV_READABLE, &NfQueue::OnReadable);
    Ref();  // keep alive while polling; released on close
  }

  ~NfQueue() override { Teardown(); }

 private:
  void Fail(Napi::Env env, const char* what) {
    int e = errno;
    Teardown();
    Napi::Error err = Napi::Error::New(env, std::string(what) + ": " + strerror(e));
    err.Set("errno", Napi::Number::New(env, e));
    err.ThrowAsJavaScriptException();
  }

  void Teardown() {
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (qh_) {
      nfq_destroy_queue(qh_);
      qh_ = nullptr;
    }
    if (h_) {
      nfq_close(h_);
      h_ = nullptr;
    }
    fd_ = -1;
  }

  static int OnPacket(struct nfq_q_handle*, struct nfgenmsg*, struct nfq_data* nfa, void* data) {
    NfQueue* self = static_cast<NfQueue*>(data);
    struct nfqnl_msg_packet_hdr* ph = nfq_get_msg_packet_hdr(nfa);
    if (!ph) return 0;
    unsigned char* payload = nullptr;
    int len = nfq_get_payload(nfa, &payload);
    if (len < 0) len = 0;
    uint32_t offset;
    if (self->reuse_) {
      // In place: the payload lies in its message's slot of the shared Buffer.
      // One packet per message, so never more packets than slots; should a
      // message ever carry more, the rest are dropped (fail closed), counted.
      if (self->count_ >= self->max_batch_) {
        nfq_set_verdict(self->qh_, ntohl(ph->packet_id), NF_DROP, 0, nullptr);
        self->overflow_++;
        return 0;
      }
      offset = len > 0 ? static_cast<uint32_t>(payload - self->slots_base_) : 0;
    } else {
      offset = static_cast<uint32_t>(self->batch_data_.size());
      self->batch_data_.insert(self->batch_data_.end(), payload, payload + len);
    }
    uint32_t mac_a = 0, mac_b = 0, hwlen = 0;
    struct nfqnl_msg_packet_hw* hw = nfq_get_packet_hw(nfa);
    if (hw) {
      hwlen = ntohs(hw->hw_addrlen);
      const uint8_t* a = hw->hw_addr;
      mac_a = (uint32_t(a[0]) << 24) | (uint32_t(a[1]) << 16) | (uint32_t(a[2]) << 8) | a[3];
      mac_b = (uint32_t(a[4]) << 8) | a[5];
    }
    uint32_t meta[META_WORDS] = {
        ntohl(ph->packet_id), offset, static_cast<uint32_t>(len), nfq_get_nfmark(nfa), ph->hook,
        nfq_get_indev(nfa), nfq_get_outdev(nfa), nfq_get_skbinfo(nfa), hwlen, mac_a, mac_b,
    };
    if (self->reuse_) {
      memcpy(self->meta_out_ + size_t(self->count_) * META_WORDS, meta, sizeof(meta));
    } else {
      self->batch_meta_.insert(self->batch_meta_.end(), meta, meta + META_WORDS);
    }
    self->count_++;
    self->received_++;
    return 0;
  }

  // When the kernel overruns the socket (ENOBUFS: messages lost for lack of
  // buffer) it sets a socket error; epoll reports POLLERR, and libuv then
  // stops the poll handle and calls back with an error status. Returning
  // there left the queue unread for good while the process looked healthy.
  // Instead: drain (the first recvmmsg returns the error and clears it, then
  // the data), and start polling again.
  static void OnReadable(uv_poll_t* handle, int status, int) {
    NfQueue* self = static_cast<NfQueue*>(handle->data);
    if (!self->h_) return;
    if (status < 0) self->poll_errors_++;
    self->Drain();
    if (status < 0 && self->poll_ && !self->deaf_) uv_poll_start(self->poll_, UV_READABLE, &NfQueue::OnReadable);
  }

  void Drain() {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    uint32_t n = 0;
    count_ = 0;
    while (n < max_batch_) {
      // Shared Buffer: each message into a slot of its own, maxBatch at most.
      // Otherwise the MMSG slots again on every call (OnPacket copies out).
      struct mmsghdr* at = reuse_ ? &msgs_[n] : msgs_.data();
      unsigned want = reuse_ ? std::min<unsigned>(MMSG, max_batch_ - n) : MMSG;
      int r = recvmmsg(fd_, at, want, MSG_DONTWAIT, nullptr);
      if (r < 0) {
        if (errno == ENOBUFS) {
          enobufs_++;
          continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) recv_errors_++;
        break;
      }
      if (r == 0) break;
      for (int i = 0; i < r; i++) {
        nfq_handle_packet(h_, static_cast<char*>(at[i].msg_hdr.msg_iov->iov_base), static_cast<int>(at[i].msg_len));
      }
      n += static_cast<uint32_t>(r);
      if (static_cast<unsigned>(r) < want) break;
    }
    if (count_ == 0) return;
    batches_++;
    uint32_t count = count_;
    if (reuse_) {
      callback_.MakeCallback(Value(), {shared_data_.Value(), shared_meta_.Value(), Napi::Number::New(env, count)});
      if (poison_) {
        for (uint32_t i = 0; i < count; i++) {
          const uint32_t* m = meta_out_ + size_t(i) * META_WORDS;
          memset(slots_base_ + m[1], POISON_BYTE, m[2]);
        }
      }
    } else {
      Napi::Buffer<uint8_t> data = Napi::Buffer<uint8_t>::Copy(env, batch_data_.data(), batch_data_.size());
      Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, batch_meta_.size() * sizeof(uint32_t));
      memcpy(ab.Data(), batch_meta_.data(), batch_meta_.size() * sizeof(uint32_t));
      Napi::Uint32Array meta = Napi::Uint32Array::New(env, batch_meta_.size(), ab, 0);
      batch_data_.clear();
      batch_meta_.clear();
      callback_.MakeCallback(Value(), {data, meta, Napi::Number::New(env, count)});
    }
    // The JS layer catches what a handler throws (bridge/io/nfqueue.ts); if
    // anything still escapes, it must not stay pending here (every later
    // Node-API call of this queue would fail with it): it becomes the
    // process's uncaught exception, and a bridge that dies is taken over.
    if (env.IsExceptionPending()) {
      Napi::Error e = env.GetAndClearPendingException();
      callback_errors_++;
      napi_fatal_exception(env, e.Value());
    }
  }

  // Verdicts on a closed queue are a programming error: throw, do not crash.
  bool EnsureOpen(Napi::Env env) {
    if (qh_) return true;
    Napi::Error::New(env, "queue closed").ThrowAsJavaScriptException();
    return false;
  }

  // verdict(id, verdict, mark?, buffer?, offset?, length?)
  Napi::Value Verdict(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!EnsureOpen(env)) return env.Undefined();
    uint32_t id = info[0].As<Napi::Number>().Uint32Value();
    uint32_t verdict = info[1].As<Napi::Number>().Uint32Value();
    uint32_t mark = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Uint32Value() : 0;
    bool set_mark = info.Length() > 2 && info[2].IsNumber();
    const unsigned char* buf = nullptr;
    uint32_t len = 0;
    if (info.Length() > 3 && info[3].IsBuffer()) {
      Napi::Buffer<uint8_t> b = info[3].As<Napi::Buffer<uint8_t>>();
      uint32_t off = info.Length() > 4 ? info[4].As<Napi::Number>().Uint32Value() : 0;
      len = info.Length() > 5 ? info[5].As<Napi::Number>().Uint32Value() : static_cast<uint32_t>(b.Length()) - off;
      if (off + len > b.Length()) {
        Napi::RangeError::New(env, "verdict buffer range").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      buf = b.Data() + off;
    }
    int r = set_mark ? nfq_set_verdict2(qh_, id, verdict, mark, len, buf) : nfq_set_verdict(qh_, id, verdict, len, buf);
    if (r < 0) verdict_errors_++;
    return Napi::Boolean::New(env, r >= 0);
  }

  // verdictBatch(maxId, verdict, mark?): one message for every queued id ≤ maxId.
  Napi::Value VerdictBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!EnsureOpen(env)) return env.Undefined();
    uint32_t id = info[0].As<Napi::Number>().Uint32Value();
    uint32_t verdict = info[1].As<Napi::Number>().Uint32Value();
    int r;
    if (info.Length() > 2 && info[2].IsNumber()) {
      r = nfq_set_verdict_batch2(qh_, id, verdict, info[2].As<Napi::Number>().Uint32Value());
    } else {
      r = nfq_set_verdict_batch(qh_, id, verdict);
    }
    if (r < 0) verdict_errors_++;
    return Napi::Boolean::New(env, r >= 0);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("received", Napi::Number::New(env, static_cast<double>(received_)));
    o.Set("batches", Napi::Number::New(env, static_cast<double>(batches_)));
    o.Set("enobufs", Napi::Number::New(env, static_cast<double>(enobufs_)));
    o.Set("recvErrors", Napi::Number::New(env, static_cast<double>(recv_errors_)));
    o.Set("verdictErrors", Napi::Number::New(env, static_cast<double>(verdict_errors_)));
    o.Set("pollErrors", Napi::Number::New(env, static_cast<double>(poll_errors_)));
    o.Set("callbackErrors", Napi::Number::New(env, static_cast<double>(callback_errors_)));
    o.Set("overflow", Napi::Number::New(env, static_cast<double>(overflow_)));
    return o;
  }

  // readable() -> whether the socket has messages (or an error) waiting to be
  // read now. The liveness guard asks it: waiting messages and nothing read
  // for long means the data path is stuck.
  Napi::Value Readable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0 || !h_) return Napi::Boolean::New(env, false);
    struct pollfd p = {fd_, POLLIN, 0};
    int r = poll(&p, 1, 0);
    return Napi::Boolean::New(env, r > 0 && (p.revents & (POLLIN | POLLERR)) != 0);
  }

  // deafen(): stops reading the socket for good, as the libuv poll did after
  // an overrun before OnReadable restarted it. A fault for tests of the
  // liveness guard only (reachable through the control socket when the
  // daemon runs with TCPFO_TEST_FAULTS=1).
  Napi::Value Deafen(const Napi::CallbackInfo& info) {
    if (poll_) uv_poll_stop(poll_);
    deaf_ = true;
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    bool was_open = h_ != nullptr;
    Teardown();
    if (was_open) Unref();
    return info.Env().Undefined();
  }

  uint32_t queue_num_ = 0;
  uint32_t max_batch_ = 64;
  struct nfq_handle* h_ = nullptr;
  struct nfq_q_handle* qh_ = nullptr;
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference callback_;
  std::vector<uint8_t> recv_buf_;
  std::vector<struct iovec> iov_;
  std::vector<struct mmsghdr> msgs_;
  std::vector<uint8_t> batch_data_;
  std::vector<uint32_t> batch_meta_;
  bool reuse_ = false, poison_ = false;
  uint8_t* slots_base_ = nullptr;  // message slot 0 (of recv_buf_, or of the shared Buffer)
  uint32_t* meta_out_ = nullptr;   // the shared metadata array (reuseBuffer)
  uint32_t count_ = 0;             // packets in the batch being drained
  Napi::Reference<Napi::Buffer<uint8_t>> shared_data_;
  Napi::Reference<Napi::Uint32Array> shared_meta_;
  uint64_t received_ = 0, batches_ = 0, enobufs_ = 0, recv_errors_ = 0, verdict_errors_ = 0;
  uint64_t poll_errors_ = 0, callback_errors_ = 0, overflow_ = 0;
  bool deaf_ = false;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NF_DROP", Napi::Number::New(env, NF_DROP));
  exports.Set("NF_ACCEPT", Napi::Number::New(env, NF_ACCEPT));
  exports.Set("NF_REPEAT", Napi::Number::New(env, NF_REPEAT));
  exports.Set("SKB_CSUMNOTREADY", Napi::Number::New(env, NFQA_SKB_CSUMNOTREADY));
  exports.Set("SKB_GSO", Napi::Number::New(env, NFQA_SKB_GSO));
  exports.Set("SKB_CSUM_NOTVERIFIED", Napi::Number::New(env, NFQA_SKB_CSUM_NOTVERIFIED));
  InitCaps(env, exports);
  InitFds(env, exports);
  InitPresence(env, exports);
  InitXlate(env, exports);
  InitSystemd(env, exports);
  InitLock(env, exports);
  InitHeartbeat(env, exports);
  InitSockDiag(env, exports);
  InitRealtime(env, exports);
  InitCcReset(env, exports);
  return NfQueue::Init(env, exports);
}

}  // namespace

NODE_API_MODULE(tcpfo_nfqueue, Init)
