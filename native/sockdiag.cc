// The node's TCP sockets on the service address, by netlink sock_diag
// (inet_diag): listed in one dump, aborted by SOCK_DESTROY one request each,
// many requests per system call. What `ss -K` does, without a process, text,
// or a dump per batch: at a takeover the secondary aborts the sockets of
// diverged connections by address, and `ss` scanned every socket of the node
// once per 64 of them (3.7 s for 950 among 50,000).
//
// A request names its socket by address, ports and the cookie the dump gave.
// The cookie pins that very socket: by numbers alone the kernel's lookup
// (inet_lookup, which searches listeners after established sockets) could
// take a newer connection with the same numbers, or the server's listener,
// and SOCK_DESTROY aborts whatever it finds. So a destroy takes what a list
// returned.
//
// An address of either family. An IPv4 address is also looked for among
// the AF_INET6 sockets as ::ffff:a.b.c.d: a server listening on [::] (Node's
// default, nginx's `listen [::]`) holds its IPv4 connections there, and
// sock_diag dumps one family per request. Each socket is destroyed in the
// family, and by the addresses, it was listed with.
//
// Both run on libuv's thread pool and settle a promise: a dump of 100,000
// sockets never holds the event loop.
#include <napi.h>

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

namespace {

// Connected states, as `ss state connected` (no LISTEN, CLOSE, TIME-WAIT or SYN-RECV).
constexpr uint32_t kConnected = (1u << TCP_ESTABLISHED) | (1u << TCP_SYN_SENT) | (1u << TCP_FIN_WAIT1) | (1u << TCP_FIN_WAIT2) |
                                (1u << TCP_CLOSE_WAIT) | (1u << TCP_LAST_ACK) | (1u << TCP_CLOSING);
// Destroy requests per send; each draws an ACK of ~100 bytes, well inside the receive buffer.
constexpr size_t kBatch = 256;

struct Sock {
  uint8_t family;     // AF_INET or AF_INET6
  uint8_t local[16];  // as inet_diag gives it: network order, an IPv4 address in the first 4 bytes
  uint8_t client[16];
  uint16_t client_port;
  uint16_t port;
  uint8_t state;
  uint32_t send_queue;
  uint32_t cookie[2];
};

struct DiagRequest {
  struct nlmsghdr nlh;
  struct inet_diag_req_v2 req;
};

class Netlink {
 public:
  Netlink() : fd_(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) {}
  ~Netlink() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

std::string Errno(const char* what, int err) { return std::string(what) + ": " + strerror(err); }

void FillRequest(DiagRequest* r, uint8_t family, uint16_t type, uint16_t flags, uint32_t seq) {
  memset(r, 0, sizeof(*r));
  r->nlh.nlmsg_len = sizeof(*r);
  r->nlh.nlmsg_type = type;
  r->nlh.nlmsg_flags = flags;
  r->nlh.nlmsg_seq = seq;
  r->req.sdiag_family = family;
  r->req.sdiag_protocol = IPPROTO_TCP;
}

// Every connected TCP socket of `family` whose local address is the `len`
// bytes of `want` (4 for AF_INET, 16 for AF_INET6); "" or the error. A
// kernel without IPv6 has no AF_INET6 handler: nothing to list there.
std::string DumpFamily(uint8_t family, const uint8_t* want, size_t len, std::vector<Sock>* out) {
  Netlink nl;
  if (nl.fd() < 0) return Errno("sock_diag socket", errno);
  DiagRequest r;
  FillRequest(&r, family, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1);
  r.req.idiag_states = kConnected;
  if (send(nl.fd(), &r, sizeof(r), 0) < 0) return Errno("sock_diag dump", errno);
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t n = recv(nl.fd(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("sock_diag dump", errno);
    }
    int len_left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<struct nlmsghdr*>(buf.data()); NLMSG_OK(h, len_left); h = NLMSG_NEXT(h, len_left)) {
      if (h->nlmsg_type == NLMSG_DONE) return "";
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<struct nlmsgerr*>(NLMSG_DATA(h));
        if (family == AF_INET6 && (-e->error == ENOENT || -e->error == EAFNOSUPPORT)) return "";
        return Errno("sock_diag dump", -e->error);
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) continue;
      auto* m = static_cast<struct inet_diag_msg*>(NLMSG_DATA(h));
      if (m->idiag_family != family || memcmp(m->id.idiag_src, want, len) != 0) continue;
      Sock s{};
      s.family = family;
      memcpy(s.local, m->id.idiag_src, 16);
      memcpy(s.client, m->id.idiag_dst, 16);
      s.client_port = ntohs(m->id.idiag_dport);
      s.port = ntohs(m->id.idiag_sport);
      s.state = m->idiag_state;
      s.send_queue = m->idiag_wqueue;
      s.cookie[0] = m->id.idiag_cookie[0];
      s.cookie[1] = m->id.idiag_cookie[1];
      out->push_back(s);
    }
  }
}

// The sockets on `addr` (4 or 16 bytes): an IPv4 address in both families.
std::string Dump(const std::vector<uint8_t>& addr, std::vector<Sock>* out) {
  if (addr.size() == 16) return DumpFamily(AF_INET6, addr.data(), 16, out);
  std::string err = DumpFamily(AF_INET, addr.data(), 4, out);
  if (!err.empty()) return err;
  uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  memcpy(mapped + 12, addr.data(), 4);
  return DumpFamily(AF_INET6, mapped, 16, out);
}

struct DestroyResult {
  uint32_t destroyed = 0;
  uint32_t gone = 0;  // no such socket any more (ENOENT), or another with its address (ESTALE: the cookie differs)
  std::string error;
};

// SOCK_DESTROY for each socket, kBatch requests per send; counts the answers.
void DestroySockets(const std::vector<Sock>& socks, DestroyResult* res) {
  Netlink nl;
  if (nl.fd() < 0) {
    res->error = Errno("sock_diag socket", errno);
    return;
  }
  std::vector<DiagRequest> reqs(kBatch);
  std::vector<char> buf(1 << 16);
  for (size_t at = 0; at < socks.size(); at += kBatch) {
    const size_t count = std::min(kBatch, socks.size() - at);
    for (size_t i = 0; i < count; i++) {
      const Sock& s = socks[at + i];
      DiagRequest* r = &reqs[i];
      FillRequest(r, s.family, SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, static_cast<uint32_t>(at + i + 1));
      r->req.idiag_states = ~0u;
      memcpy(r->req.id.idiag_src, s.local, 16);
      r->req.id.idiag_sport = htons(s.port);
      memcpy(r->req.id.idiag_dst, s.client, 16);
      r->req.id.idiag_dport = htons(s.client_port);
      r->req.id.idiag_cookie[0] = s.cookie[0];
      r->req.id.idiag_cookie[1] = s.cookie[1];
    }
    if (send(nl.fd(), reqs.data(), count * sizeof(DiagRequest), 0) < 0) {
      res->error = Errno("sock_diag destroy", errno);
      return;
    }
    size_t answered = 0;
    while (answered < count) {
      ssize_t n = recv(nl.fd(), buf.data(), buf.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        res->error = Errno("sock_diag destroy", errno);
        return;
      }
      int len = static_cast<int>(n);
      for (auto* h = reinterpret_cast<struct nlmsghdr*>(buf.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_type != NLMSG_ERROR) continue;
        answered++;
        const int err = -static_cast<struct nlmsgerr*>(NLMSG_DATA(h))->error;
        if (err == 0) res->destroyed++;
        else if (err == ENOENT || err == ESTALE) res->gone++;
        else if (res->error.empty()) res->error = Errno("sock_diag destroy", err);
      }
    }
    if (!res->error.empty()) return;
  }
}

class ListWorker : public Napi::AsyncWorker {
 public:
  ListWorker(Napi::Env env, std::vector<uint8_t> addr)
      : Napi::AsyncWorker(env), addr_(std::move(addr)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    std::string err = Dump(addr_, &socks_);
    if (!err.empty()) SetError(err);
  }
  // {family, local, client, clientPort, port, state, sendQueue, cookie}: columns, one row per
  // socket (local and client: 16 bytes each, cookie: two words each).
  void OnOK() override {
    Napi::Env env = Env();
    const size_t n = socks_.size();
    auto family = Napi::Uint8Array::New(env, n);
    auto local = Napi::Uint8Array::New(env, 16 * n);
    auto client = Napi::Uint8Array::New(env, 16 * n);
    auto client_port = Napi::Uint16Array::New(env, n);
    auto port = Napi::Uint16Array::New(env, n);
    auto state = Napi::Uint8Array::New(env, n);
    auto send_queue = Napi::Uint32Array::New(env, n);
    auto cookie = Napi::Uint32Array::New(env, 2 * n);
    for (size_t i = 0; i < n; i++) {
      const Sock& s = socks_[i];
      family[i] = s.family;
      memcpy(local.Data() + 16 * i, s.local, 16);
      memcpy(client.Data() + 16 * i, s.client, 16);
      client_port[i] = s.client_port;
      port[i] = s.port;
      state[i] = s.state;
      send_queue[i] = s.send_queue;
      cookie[2 * i] = s.cookie[0];
      cookie[2 * i + 1] = s.cookie[1];
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("family", family);
    o.Set("local", local);
    o.Set("client", client);
    o.Set("clientPort", client_port);
    o.Set("port", port);
    o.Set("state", state);
    o.Set("sendQueue", send_queue);
    o.Set("cookie", cookie);
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::vector<uint8_t> addr_;
  Napi::Promise::Deferred deferred_;
  std::vector<Sock> socks_;
};

class DestroyWorker : public Napi::AsyncWorker {
 public:
  DestroyWorker(Napi::Env env, std::vector<Sock> socks)
      : Napi::AsyncWorker(env), socks_(std::move(socks)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { DestroySockets(socks_, &res_); }
  // {destroyed, gone, error?}: an error after some were destroyed still counts them.
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("destroyed", res_.destroyed);
    o.Set("gone", res_.gone);
    if (!res_.error.empty()) o.Set("error", res_.error);
    deferred_.Resolve(o);
  }

 private:
  std::vector<Sock> socks_;
  Napi::Promise::Deferred deferred_;
  DestroyResult res_;
};

// sockList(addr: Buffer of 4 or 16 bytes) -> Promise<columns>: connected TCP sockets whose local address is addr.
Napi::Value SockList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBuffer()) {
    Napi::TypeError::New(env, "sockList(addr: Buffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto addr = info[0].As<Napi::Buffer<uint8_t>>();
  if (addr.Length() != 4 && addr.Length() != 16) {
    Napi::RangeError::New(env, "sockList: an address of 4 or 16 bytes").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  auto* w = new ListWorker(env, std::vector<uint8_t>(addr.Data(), addr.Data() + addr.Length()));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// sockDestroy(family, local, client, clientPort, port, cookie) -> Promise<{destroyed, gone, error?}>, rows as sockList gives them.
Napi::Value SockDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6) {
    Napi::TypeError::New(env, "sockDestroy(family, local, client, clientPort, port, cookie)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  for (size_t i = 0; i < 6; i++) {
    if (!info[i].IsTypedArray()) {
      Napi::TypeError::New(env, "sockDestroy(family, local, client, clientPort, port, cookie): typed arrays").ThrowAsJavaScriptException();
      return env.Undefined();
    }
  }
  auto family = info[0].As<Napi::Uint8Array>();
  auto local = info[1].As<Napi::Uint8Array>();
  auto client = info[2].As<Napi::Uint8Array>();
  auto client_port = info[3].As<Napi::Uint16Array>();
  auto port = info[4].As<Napi::Uint16Array>();
  auto cookie = info[5].As<Napi::Uint32Array>();
  const size_t n = family.ElementLength();
  if (local.ElementLength() != 16 * n || client.ElementLength() != 16 * n || client_port.ElementLength() != n || port.ElementLength() != n ||
      cookie.ElementLength() != 2 * n) {
    Napi::RangeError::New(env, "sockDestroy: columns of different lengths").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<Sock> socks(n);
  for (size_t i = 0; i < n; i++) {
    Sock& s = socks[i];
    s.family = family[i];
    if (s.family != AF_INET && s.family != AF_INET6) {
      Napi::RangeError::New(env, "sockDestroy: a family other than AF_INET and AF_INET6").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    memcpy(s.local, local.Data() + 16 * i, 16);
    memcpy(s.client, client.Data() + 16 * i, 16);
    s.client_port = client_port[i];
    s.port = port[i];
    s.cookie[0] = cookie[2 * i];
    s.cookie[1] = cookie[2 * i + 1];
  }
  auto* w = new DestroyWorker(env, std::move(socks));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void InitSockDiag(Napi::Env env, Napi::Object exports) {
  exports.Set("sockList", Napi::Function::New(env, SockList));
  exports.Set("sockDestroy", Napi::Function::New(env, SockDestroy));
}
