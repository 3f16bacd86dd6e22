// The active node's presence on the LAN, independent of the JS event loop.
//
// The active bridge answers ARP for the service address itself (the kernel
// holds the VIP dormant, ARP suppressed), so a dead bridge stops claiming
// the VIP and the peer can take over. The same for an IPv6 service address:
// the kernel holds it on `lo`, where it answers no neighbour solicitation
// from the LAN, and this thread answers those for it (a solicited
// advertisement; a DAD probe is answered to all nodes, as RFC 4861 7.2.4
// says, so the peer's split-brain probe sees the claim). The packet socket
// joins the address's solicited-node group, so a NIC that filters
// multicast passes the solicitations up. Answered from the event loop, a
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
// The thread runs at the bridge's real-time priority (realtime.h), and
// socket filters hand it only ARP requests and neighbour solicitations for
// the VIPs: other traffic on the LAN never wakes it. Each answer's delay, from the kernel's receipt of
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

#include <algorithm>
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

// IPv6 and ICMPv6 offsets (no extension header: a solicitation has none).
constexpr uint32_t ETHERTYPE_IPV6 = 0x86dd;
constexpr uint32_t OFF_IP6_NEXT = 14 + 6;
constexpr uint32_t OFF_IP6_HOPS = 14 + 7;
constexpr uint32_t OFF_IP6_SRC = 14 + 8;
constexpr uint32_t OFF_ICMP6 = 14 + 40;
constexpr uint32_t OFF_NS_TARGET = OFF_ICMP6 + 8;
constexpr uint32_t NH_ICMPV6 = 58;
constexpr uint32_t ND_SOLICIT = 135;
constexpr uint8_t ND_ADVERT = 136;
constexpr int NS_MIN_FRAME = OFF_ICMP6 + 24;
// Ethernet, IPv6, the advertisement (24) and its target link-layer address option (8).
constexpr int NA_FRAME = 14 + 40 + 32;
constexpr uint8_t NA_SOLICITED = 0x40, NA_OVERRIDE = 0x20;

// The ones' complement sum of `len` bytes (even), folded later.
uint32_t Sum16(const uint8_t* p, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += (static_cast<uint32_t>(p[i]) << 8) | p[i + 1];
  return sum;
}

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

  // new Presence(ifname, vip (host order u32), mac: Buffer(6), holdMs, label, vip6: Buffer(16) | null)
  explicit Presence(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Presence>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 6 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsBuffer() || !info[3].IsNumber() || !info[4].IsString() ||
        !(info[5].IsNull() || info[5].IsBuffer())) {
      Napi::TypeError::New(env, "Presence(ifname, vip, mac, holdMs, label, vip6)").ThrowAsJavaScriptException();
      return;
    }
    if (info[5].IsBuffer()) {
      Napi::Buffer<uint8_t> v6 = info[5].As<Napi::Buffer<uint8_t>>();
      if (v6.Length() != 16) {
        Napi::TypeError::New(env, "vip6 must be 16 bytes").ThrowAsJavaScriptException();
        return;
      }
      memcpy(vip6_, v6.Data(), 16);
      has_vip6_ = true;
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
    fd_ = OpenFiltered(env, ETH_P_ARP, code, sizeof(code) / sizeof(code[0]), "");
    if (fd_ < 0) return;
    if (has_vip6_ && !OpenSolicitations(env)) return;
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
    if (fd6_ >= 0) close(fd6_);
    fd6_ = -1;
    Napi::Error::New(env, std::string(what) + ": " + strerror(e)).ThrowAsJavaScriptException();
  }

  // A packet socket of `proto` bound to the interface, `code` letting
  // through only what the thread answers, each frame stamped with the
  // kernel's receipt time. -1 (and thrown) if it cannot be opened.
  int OpenFiltered(Napi::Env env, uint16_t proto, struct sock_filter* code, size_t n, const char* which) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(proto));
    struct sock_fprog prog = {static_cast<unsigned short>(n), code};
    int on = 1;
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof(sll));
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(proto);
    sll.sll_ifindex = static_cast<int>(ifindex_);
    const char* failed = nullptr;
    if (fd < 0) failed = "socket(AF_PACKET)";
    else if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0) failed = "SO_ATTACH_FILTER";
    else if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)) < 0) failed = "SO_TIMESTAMPNS";
    else if (bind(fd, reinterpret_cast<struct sockaddr*>(&sll), sizeof(sll)) < 0) failed = "bind(AF_PACKET)";
    if (!failed) return fd;
    const int e = errno;
    if (fd >= 0) close(fd);
    errno = e;
    Fail(env, (std::string(failed) + which).c_str());
    return -1;
  }

  // The packet socket for neighbour solicitations of the IPv6 VIP: a filter
  // passing only those, bound to the interface, in the VIP's solicited-node
  // group (ff02::1:ffXX:XXXX, MAC 33:33:ff:XX:XX:XX).
  bool OpenSolicitations(Napi::Env env) {
    uint32_t w[4];
    for (int i = 0; i < 4; i++) w[i] = (static_cast<uint32_t>(vip6_[4 * i]) << 24) | (vip6_[4 * i + 1] << 16) | (vip6_[4 * i + 2] << 8) | vip6_[4 * i + 3];
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, OFF_ETHERTYPE),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETHERTYPE_IPV6, 0, 13),
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, OFF_IP6_NEXT),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NH_ICMPV6, 0, 11),
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, OFF_ICMP6),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ND_SOLICIT, 0, 9),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, OFF_NS_TARGET),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, w[0], 0, 7),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, OFF_NS_TARGET + 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, w[1], 0, 5),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, OFF_NS_TARGET + 8),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, w[2], 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, OFF_NS_TARGET + 12),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, w[3], 0, 1),
        BPF_STMT(BPF_RET | BPF_K, 0xffff),
        BPF_STMT(BPF_RET | BPF_K, 0),
    };
    fd6_ = OpenFiltered(env, ETH_P_IPV6, code, sizeof(code) / sizeof(code[0]), " (IPv6)");
    if (fd6_ < 0) return false;
    struct packet_mreq mr;
    memset(&mr, 0, sizeof(mr));
    mr.mr_ifindex = static_cast<int>(ifindex_);
    mr.mr_type = PACKET_MR_MULTICAST;
    mr.mr_alen = 6;
    const uint8_t group[6] = {0x33, 0x33, 0xff, vip6_[13], vip6_[14], vip6_[15]};
    memcpy(mr.mr_address, group, 6);
    if (setsockopt(fd6_, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0) {
      Fail(env, "PACKET_ADD_MEMBERSHIP (the solicited-node group)");
      return false;
    }
    return true;
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
    if (fd6_ >= 0) {
      close(fd6_);
      fd6_ = -1;
    }
  }

  static void* Run(void* arg) {
    static_cast<Presence*>(arg)->Loop();
    return nullptr;
  }

  void Loop() {
    uint8_t buf[1600];
    alignas(struct cmsghdr) uint8_t control[CMSG_SPACE(sizeof(struct timespec))];
    struct pollfd p[2] = {{fd_, POLLIN, 0}, {fd6_, POLLIN, 0}};
    const nfds_t nfds = fd6_ >= 0 ? 2 : 1;
    while (!stop_.load()) {
      int64_t silent = NowMs() - last_touch_.load();
      int64_t hold = hold_ms_.load();
      if (hold > 0 && silent > hold) Expire(silent, hold);
      p[0].revents = p[1].revents = 0;
      int r = poll(p, nfds, 20);
      if (r <= 0) continue;
      for (nfds_t k = 0; k < nfds; k++) {
        if (!(p[k].revents & POLLIN)) continue;
        int64_t received_us = -1;
        ssize_t n = Receive(p[k].fd, buf, sizeof(buf), control, sizeof(control), &received_us);
        if (n <= 0) continue;
        burst_.Count();
        if (k == 0 ? AnswerArp(buf, n) : AnswerSolicitation(buf, n)) Answered(received_us);
      }
    }
  }

  // One frame, and the kernel's receipt time (µs, wall clock; -1 if none).
  static ssize_t Receive(int fd, uint8_t* buf, size_t size, uint8_t* control, size_t control_size, int64_t* received_us) {
    struct iovec iov = {buf, size};
    struct msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = control_size;
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n <= 0) return n;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        struct timespec ts;
        memcpy(&ts, CMSG_DATA(c), sizeof(ts));
        *received_us = RealtimeUs(ts);
      }
    }
    return n;
  }

  // Whether an answer may go out now: answering, and the loop alive (else Expire() next turn).
  bool MayAnswer() {
    if (!answering_.load()) return false;
    int64_t hold = hold_ms_.load();
    return !(hold > 0 && NowMs() - last_touch_.load() > hold);
  }

  bool Send(int fd, const uint8_t* frame, size_t len, uint16_t proto) {
    struct sockaddr_ll to;
    memset(&to, 0, sizeof(to));
    to.sll_family = AF_PACKET;
    to.sll_protocol = htons(proto);
    to.sll_ifindex = static_cast<int>(ifindex_);
    to.sll_halen = 6;
    memcpy(to.sll_addr, frame, 6);
    if (sendto(fd, frame, len, 0, reinterpret_cast<const struct sockaddr*>(&to), sizeof(to)) != static_cast<ssize_t>(len)) {
      send_errors_++;
      return false;
    }
    replies_++;
    return true;
  }

  void Answered(int64_t received_us) {
    if (received_us < 0) return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t delay = RealtimeUs(now) - received_us;
    if (delay < 0) delay = 0;  // the wall clock stepped back
    if (delay > max_delay_us_.load()) max_delay_us_.store(delay);
    if (delay > LATE_US) late_++;
  }

  // An ARP request for the VIP: the reply. Whether one was sent.
  bool AnswerArp(const uint8_t* buf, ssize_t n) {
    if (n < ARP_FRAME) return false;
    // Ethernet type ARP; htype 1, ptype IPv4, hlen 6, plen 4, oper request.
    const uint8_t* a = buf + 14;
    if (buf[12] != 0x08 || buf[13] != 0x06 || a[0] != 0 || a[1] != 1 || a[2] != 0x08 || a[3] != 0 || a[4] != 6 || a[5] != 4 || a[6] != 0 || a[7] != 1) return false;
    uint32_t spa, tpa;
    memcpy(&spa, a + 14, 4);
    memcpy(&tpa, a + 24, 4);
    // A request for the VIP; not someone's own announcement of it.
    if (tpa != vip_ || spa == vip_) return false;
    requests_++;
    if (!MayAnswer()) return false;
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
    return Send(fd_, out, sizeof(out), ETH_P_ARP);
  }

  // A neighbour solicitation for the IPv6 VIP (RFC 4861 7.1.1's checks that
  // matter here): the advertisement, solicited to its sender, or to all
  // nodes for a DAD probe (from ::). Whether one was sent.
  bool AnswerSolicitation(const uint8_t* buf, ssize_t n) {
    if (n < NS_MIN_FRAME || buf[12] != 0x86 || buf[13] != 0xdd || (buf[14] >> 4) != 6 || buf[OFF_IP6_NEXT] != NH_ICMPV6) return false;
    if (buf[OFF_IP6_HOPS] != 255 || buf[OFF_ICMP6] != ND_SOLICIT || buf[OFF_ICMP6 + 1] != 0) return false;
    if (memcmp(buf + OFF_NS_TARGET, vip6_, 16) != 0) return false;
    // Our own frames (the claim probe, an announcement) come back to a packet socket too.
    if (memcmp(buf + 6, mac_, 6) == 0) return false;
    const size_t icmp_len = std::min(static_cast<size_t>(n) - OFF_ICMP6, static_cast<size_t>((buf[18] << 8) | buf[19]));
    if (icmp_len < 24) return false;
    const uint8_t* src = buf + OFF_IP6_SRC;
    static const uint8_t kAny[16] = {};
    const bool dad = memcmp(src, kAny, 16) == 0;
    // The asker's MAC: its source link-layer address option, else the frame's sender.
    const uint8_t* to_mac = buf + 6;
    for (size_t at = 24; at + 8 <= icmp_len;) {
      const uint8_t* o = buf + OFF_ICMP6 + at;
      if (o[1] == 0) return false;  // a zero-length option: invalid, silently dropped
      if (o[0] == 1 && o[1] == 1) to_mac = o + 2;
      at += static_cast<size_t>(o[1]) * 8;
    }
    if (dad && to_mac != buf + 6) return false;  // a DAD probe carries no source link-layer address
    requests_++;
    if (!MayAnswer()) return false;
    static const uint8_t kAllNodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t kAllNodesMac[6] = {0x33, 0x33, 0, 0, 0, 1};
    uint8_t out[NA_FRAME] = {};
    memcpy(out, dad ? kAllNodesMac : to_mac, 6);
    memcpy(out + 6, mac_, 6);
    out[12] = 0x86;
    out[13] = 0xdd;
    uint8_t* ip = out + 14;
    ip[0] = 0x60;
    ip[5] = 32;  // payload length
    ip[6] = NH_ICMPV6;
    ip[7] = 255;
    memcpy(ip + 8, vip6_, 16);
    memcpy(ip + 24, dad ? kAllNodes : src, 16);
    uint8_t* na = ip + 40;
    na[0] = ND_ADVERT;
    na[4] = dad ? NA_OVERRIDE : NA_SOLICITED | NA_OVERRIDE;
    memcpy(na + 8, vip6_, 16);
    na[24] = 2;  // target link-layer address
    na[25] = 1;
    memcpy(na + 26, mac_, 6);
    // Over the pseudo header: source, destination, length 32, next header 58.
    uint32_t sum = Sum16(ip + 8, 32, 32 + NH_ICMPV6);
    sum = Sum16(na, 32, sum);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    const uint16_t csum = static_cast<uint16_t>(~sum);
    na[2] = static_cast<uint8_t>(csum >> 8);
    na[3] = static_cast<uint8_t>(csum);
    return Send(fd6_, out, sizeof(out), ETH_P_IPV6);
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
  uint8_t vip6_[16] = {};
  bool has_vip6_ = false;
  int fd6_ = -1;
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
