// Loads and attaches the primary's inbound translation (native/xlate.bpf.c)
// with libbpf, and gives JS its connection map. The tc filters have a fixed
// handle and priority on the LAN interface's ingress (the translation) and
// egress (what was released): a restarted bridge replaces a killed
// predecessor's in one step (BPF_TC_F_REPLACE), and any start and
// `tcpfo cleanup` find them.
#include <napi.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>
#include <tuple>
#include <vector>

extern "C" {
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
}

#include "bpf/digest.h"
#include "bpf/maps.h"

namespace {

constexpr uint32_t TC_HANDLE = 0x7466;
constexpr uint32_t TC_PRIORITY = 7466;

using ConnKey = struct conn_key;
using ConnVal = struct conn_val;
using OutVal = struct out_val;
using DupCfg = struct dup_cfg;
using SvcKey = struct svc_key;

int LibbpfQuiet(enum libbpf_print_level level, const char*, va_list) { return 0; }

uint64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

class Xlate : public Napi::ObjectWrap<Xlate> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "Xlate",
                                      {
                                          InstanceMethod("set", &Xlate::Set),
                                          InstanceMethod("primaryOnly", &Xlate::PrimaryOnly),
                                          InstanceMethod("primaryOnlyMany", &Xlate::PrimaryOnlyMany),
                                          InstanceMethod("released", &Xlate::Released),
                                          InstanceMethod("run", &Xlate::Run),
                                          InstanceMethod("mergeStart", &Xlate::MergeStart),
                                          InstanceMethod("mergeResume", &Xlate::MergeResume),
                                          InstanceMethod("mergeTake", &Xlate::MergeTake),
                                          InstanceMethod("peer", &Xlate::Peer),
                                          InstanceMethod("remove", &Xlate::Remove),
                                          InstanceMethod("get", &Xlate::Get),
                                          InstanceMethod("service", &Xlate::Service),
                                          InstanceMethod("counters", &Xlate::Counters),
                                          InstanceMethod("orderDone", &Xlate::OrderDone),
                                          InstanceMethod("orderHold", &Xlate::OrderHold),
                                          InstanceMethod("orderQueued", &Xlate::OrderQueued),
                                          InstanceMethod("orderMapped", &Xlate::OrderMapped),
                                          InstanceMethod("secondarySilentMs", &Xlate::SecondarySilentMs),
                                          InstanceMethod("duplicateTo", &Xlate::DuplicateTo),
                                          InstanceMethod("attach", &Xlate::AttachTo),
                                          InstanceMethod("handshakes", &Xlate::Handshakes),
                                          InstanceMethod("alone", &Xlate::Alone),
                                          InstanceMethod("stashedConns", &Xlate::StashedConns),
                                          InstanceMethod("drainEvents", &Xlate::DrainEvents),
                                          InstanceMethod("heldHandshakes", &Xlate::HeldHandshakes),
                                          InstanceMethod("close", &Xlate::Close),
                                          StaticMethod("detach", &Xlate::DetachStatic),
                                          StaticMethod("unpin", &Xlate::UnpinStatic),
                                          StaticMethod("digest", &Xlate::DigestStatic),
                                      });
    exports.Set("Xlate", ctor);
  }

  // new Xlate(objectPath, ifname, maxEntries, pinPath?): with pinPath, the netfilter match
  // of primary-only connections (tcpfo_primary_only) is pinned there for iptables' `-m bpf`,
  // and the one that marks segments queued only for the order (tcpfo_order_only) beside it.
  explicit Xlate(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Xlate>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsNumber()) {
      Napi::TypeError::New(env, "Xlate(objectPath, ifname, maxEntries, pinPath?)").ThrowAsJavaScriptException();
      return;
    }
    if (info.Length() > 3 && info[3].IsString()) pin_ = info[3].As<Napi::String>();
    std::string path = info[0].As<Napi::String>();
    std::string ifname = info[1].As<Napi::String>();
    uint32_t max = info[2].As<Napi::Number>().Uint32Value();
    libbpf_set_print(LibbpfQuiet);
    // An empty ifname loads the programs without attaching them (tests run them with run()).
    if (!ifname.empty()) {
      ifindex_ = if_nametoindex(ifname.c_str());
      if (!ifindex_) { Fail(env, ("no interface " + ifname).c_str(), errno); return; }
    }
    obj_ = bpf_object__open_file(path.c_str(), nullptr);
    if (!obj_ || libbpf_get_error(obj_)) {
      obj_ = nullptr;
      { Fail(env, ("cannot open " + path).c_str(), errno); return; }
    }
    struct bpf_map* map = bpf_object__find_map_by_name(obj_, "conns");
    if (!map) { Fail(env, "no map conns in the object", ENOENT); return; }
    struct bpf_map* out = bpf_object__find_map_by_name(obj_, "primary_only");
    if (!out) { Fail(env, "no map primary_only in the object", ENOENT); return; }
    struct bpf_map* mrg = bpf_object__find_map_by_name(obj_, "merge");
    struct bpf_map* hints = bpf_object__find_map_by_name(obj_, "merge_hints");
    struct bpf_map* peer = bpf_object__find_map_by_name(obj_, "peer");
    if (!mrg || !hints || !peer) { Fail(env, "no map merge, merge_hints or peer in the object", ENOENT); return; }
    if (max) {
      bpf_map__set_max_entries(map, max);
      bpf_map__set_max_entries(out, max);
      bpf_map__set_max_entries(mrg, max);
      bpf_map__set_max_entries(hints, max);
    }
    int err = LoadSignalsHeld(obj_);
    if (err) { Fail(env, "bpf_object__load (the kernel refused the program)", -err); return; }
    struct bpf_program* prog = bpf_object__find_program_by_name(obj_, "tcpfo_xlate");
    if (!prog) { Fail(env, "no program tcpfo_xlate in the object", ENOENT); return; }
    map_fd_ = bpf_map__fd(map);
    out_fd_ = bpf_map__fd(out);
    merge_fd_ = bpf_map__fd(mrg);
    hint_fd_ = bpf_map__fd(hints);
    peer_fd_ = bpf_map__fd(peer);
    struct bpf_map* svc = bpf_object__find_map_by_name(obj_, "services");
    if (!svc) { Fail(env, "no map services in the object", ENOENT); return; }
    svc_fd_ = bpf_map__fd(svc);
    struct bpf_map* cnt = bpf_object__find_map_by_name(obj_, "counters");
    if (!cnt) { Fail(env, "no map counters in the object", ENOENT); return; }
    cnt_fd_ = bpf_map__fd(cnt);
    struct bpf_map* seen = bpf_object__find_map_by_name(obj_, "secondary_seen");
    if (!seen) { Fail(env, "no map secondary_seen in the object", ENOENT); return; }
    seen_fd_ = bpf_map__fd(seen);
    struct bpf_map* dup = bpf_object__find_map_by_name(obj_, "dup");
    if (!dup) { Fail(env, "no map dup in the object", ENOENT); return; }
    dup_fd_ = bpf_map__fd(dup);
    struct bpf_map* order = bpf_object__find_map_by_name(obj_, "order");
    if (!order) { Fail(env, "no map order in the object", ENOENT); return; }
    order_fd_ = bpf_map__fd(order);
    // The counts in the bridge's memory: a verdict's count reaches the match
    // with a store. Where mmap fails, each write is a system call instead.
    void* mem = mmap(nullptr, OrderBytes(), PROT_READ | PROT_WRITE, MAP_SHARED, order_fd_, 0);
    order_mem_ = mem == MAP_FAILED ? nullptr : static_cast<struct order_slots*>(mem);
    struct bpf_map* stash = bpf_object__find_map_by_name(obj_, "stash");
    if (!stash) { Fail(env, "no map stash in the object", ENOENT); return; }
    stash_fd_ = bpf_map__fd(stash);
    struct bpf_map* events = bpf_object__find_map_by_name(obj_, "events");
    if (!events) { Fail(env, "no map events in the object", ENOENT); return; }
    struct bpf_map* hs = bpf_object__find_map_by_name(obj_, "handshakes");
    if (!hs) { Fail(env, "no map handshakes in the object", ENOENT); return; }
    hs_fd_ = bpf_map__fd(hs);
    ring_ = ring_buffer__new(bpf_map__fd(events), OnEvent, this, nullptr);
    if (!ring_) { Fail(env, "ring_buffer__new (events)", errno); return; }
    struct bpf_program* sent = bpf_object__find_program_by_name(obj_, "tcpfo_sent");
    if (!sent) { Fail(env, "no program tcpfo_sent in the object", ENOENT); return; }
    if (!ifindex_) return;
    AttachLoaded(env);
  }

  ~Xlate() override { Teardown(); }

 private:
  // Pins the match (pin_, if any) and attaches the tc programs on ifindex_:
  // the programs were loaded already, with whatever capabilities the process
  // had then (a secondary loads them at its start, as root, and attaches them
  // when it takes the primary role, with fewer).
  void AttachLoaded(Napi::Env env) {
    if (!pin_.empty()) {
      // The match that lets P's segments past the queue at pin_, the one that
      // marks those sent there only to wait their turn beside it.
      for (const char* name : {"tcpfo_primary_only", "tcpfo_order_only"}) {
        struct bpf_program* match = bpf_object__find_program_by_name(obj_, name);
        if (!match) { Fail(env, (std::string("no program ") + name + " in the object").c_str(), ENOENT); return; }
        std::string path = PinPath(name);
        unlink(path.c_str());  // a killed predecessor's
        if (bpf_obj_pin(bpf_program__fd(match), path.c_str()) != 0) { Fail(env, ("cannot pin a match at " + path).c_str(), errno); return; }
        pinned_ = true;
      }
    }
    if (!ifindex_) return;
    // Egress first: what the bridge releases is recorded before a client segment is judged by it.
    int err = Attach(BPF_TC_EGRESS, bpf_program__fd(bpf_object__find_program_by_name(obj_, "tcpfo_sent")));
    if (err) { Fail(env, "bpf_tc_attach (egress)", -err); return; }
    egress_ = true;
    err = Attach(BPF_TC_INGRESS, bpf_program__fd(bpf_object__find_program_by_name(obj_, "tcpfo_xlate")));
    if (err) { Fail(env, "bpf_tc_attach (ingress)", -err); return; }
    ingress_ = true;
  }

  // attach(ifname, pinPath?): programs loaded without an interface (ifname ''), attached now.
  Napi::Value AttachTo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!obj_ || ifindex_ || egress_ || info.Length() < 1 || !info[0].IsString()) {
      Napi::Error::New(env, "attach(ifname, pinPath?): only once, on programs loaded without an interface").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::string ifname = info[0].As<Napi::String>();
    if (info.Length() > 1 && info[1].IsString()) pin_ = info[1].As<Napi::String>();
    ifindex_ = if_nametoindex(ifname.c_str());
    if (!ifindex_) { Fail(env, ("no interface " + ifname).c_str(), errno); return env.Undefined(); }
    AttachLoaded(env);
    return env.Undefined();
  }

  void Fail(Napi::Env env, const char* what, int e) {
    Teardown();
    Napi::Error err = Napi::Error::New(env, std::string(what) + ": " + strerror(e));
    err.ThrowAsJavaScriptException();
  }

  // Attaches `fd` at our fixed handle and priority on one side of the LAN interface,
  // replacing what a killed predecessor left there. The clsact qdisc is the bridge's to
  // add (journaled, bridge/io/node-state.ts); here it exists.
  int Attach(enum bpf_tc_attach_point where, int fd) {
    struct bpf_tc_hook hook = HookOf(ifindex_, where);
    int err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST) return err;
    struct bpf_tc_opts opts = OptsOf();
    opts.prog_fd = fd;
    opts.flags = BPF_TC_F_REPLACE;
    return bpf_tc_attach(&hook, &opts);
  }

  static struct bpf_tc_hook HookOf(unsigned ifindex, enum bpf_tc_attach_point where) {
    struct bpf_tc_hook hook;
    memset(&hook, 0, sizeof(hook));
    hook.sz = sizeof(hook);
    hook.ifindex = static_cast<int>(ifindex);
    hook.attach_point = where;
    return hook;
  }

  static struct bpf_tc_opts OptsOf() {
    struct bpf_tc_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.handle = TC_HANDLE;
    opts.priority = TC_PRIORITY;
    return opts;
  }

  // Loads the programs with this thread's signals held. The verifier gives
  // up with EAGAIN when a signal is pending for the loading thread (its run
  // over these programs takes up to a second), and libbpf tries again only a
  // few times: a child's SIGCHLD, or a profiler's SIGPROF every millisecond,
  // made the kernel seem to refuse the programs, and the bridge fell back to
  // the queue. Held, a signal waits for the load (or goes to another thread).
  static int LoadSignalsHeld(struct bpf_object* obj) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = bpf_object__load(obj);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return err;
  }

  // Where match `name` is pinned: the first at pin_, the second beside it
  // (bridge/io/xlate.ts orderPinPath).
  std::string PinPath(const char* name) const {
    return std::string(name) == "tcpfo_primary_only" ? pin_ : pin_ + "_order";
  }

  // Removes our filter from one side of an interface; whether there was one.
  static bool Detach(unsigned ifindex, enum bpf_tc_attach_point where) {
    struct bpf_tc_hook hook = HookOf(ifindex, where);
    struct bpf_tc_opts opts = OptsOf();
    return bpf_tc_detach(&hook, &opts) == 0;
  }

  void Teardown() {
    if (ring_) {
      ring_buffer__free(ring_);
      ring_ = nullptr;
    }
    if (ingress_) Detach(ifindex_, BPF_TC_INGRESS);
    if (egress_) Detach(ifindex_, BPF_TC_EGRESS);
    ingress_ = egress_ = false;
    if (pinned_) {
      unlink(PinPath("tcpfo_primary_only").c_str());
      unlink(PinPath("tcpfo_order_only").c_str());
    }
    pinned_ = false;
    if (obj_) {
      bpf_object__close(obj_);
      obj_ = nullptr;
    }
    map_fd_ = -1;
    out_fd_ = -1;
    merge_fd_ = -1;
    hint_fd_ = -1;
    peer_fd_ = -1;
    svc_fd_ = -1;
    cnt_fd_ = -1;
    seen_fd_ = -1;
    dup_fd_ = -1;
    if (order_mem_) munmap(order_mem_, OrderBytes());
    order_mem_ = nullptr;
    order_fd_ = -1;
    stash_fd_ = -1;
    hs_fd_ = -1;
  }

  static ConnKey KeyOf(const Napi::CallbackInfo& info) {
    ConnKey k;
    memset(&k, 0, sizeof(k));
    k.client = htonl(info[0].As<Napi::Number>().Uint32Value());
    k.service = htonl(info[1].As<Napi::Number>().Uint32Value());
    k.cport = htons(static_cast<uint16_t>(info[2].As<Napi::Number>().Uint32Value()));
    k.sport = htons(static_cast<uint16_t>(info[3].As<Napi::Number>().Uint32Value()));
    return k;
  }

  // set(client, service, cport, sport, dseq, dts, flags, wscale) -> boolean
  Napi::Value Set(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (map_fd_ < 0 || info.Length() < 8) return Napi::Boolean::New(env, false);
    ConnKey k = KeyOf(info);
    ConnVal v;
    memset(&v, 0, sizeof(v));
    v.dseq = info[4].As<Napi::Number>().Uint32Value();
    v.dts = info[5].As<Napi::Number>().Uint32Value();
    v.flags = info[6].As<Napi::Number>().Uint32Value();
    v.wscale = info[7].As<Napi::Number>().Uint32Value();
    return Napi::Boolean::New(env, bpf_map_update_elem(map_fd_, &k, &v, BPF_ANY) == 0);
  }

  // primaryOnly(client, service, cport, sport, dseq, dts, flags, wscaleP, wscaleS) -> boolean:
  // P's segments of this connection leave in the kernel from now on.
  Napi::Value PrimaryOnly(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (out_fd_ < 0 || info.Length() < 9) return Napi::Boolean::New(env, false);
    ConnKey k = KeyOf(info);
    OutVal v;
    memset(&v, 0, sizeof(v));
    v.dseq = info[4].As<Napi::Number>().Uint32Value();
    v.dts = info[5].As<Napi::Number>().Uint32Value();
    v.flags = info[6].As<Napi::Number>().Uint32Value();
    v.wscale_p = static_cast<uint8_t>(info[7].As<Napi::Number>().Uint32Value());
    v.wscale_s = static_cast<uint8_t>(info[8].As<Napi::Number>().Uint32Value());
    return Napi::Boolean::New(env, bpf_map_update_elem(out_fd_, &k, &v, BPF_NOEXIST) == 0);
  }

  // primaryOnlyMany(records: Buffer) -> number: primaryOnly for many connections in one system call
  // (BPF_MAP_UPDATE_BATCH). Each record is PRIMARY_ONLY_RECORD bytes: the struct conn_key as the
  // map has it (network order), then dseq and dts (u32, host order), flags, wscale_p, wscale_s and a
  // pad byte. Returns how many of the first records the map took (it stops at the first it
  // refuses: a full map).
  static constexpr size_t kPrimaryOnlyRecord = sizeof(ConnKey) + 12;
  Napi::Value PrimaryOnlyMany(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (out_fd_ < 0 || info.Length() < 1 || !info[0].IsBuffer()) return Napi::Number::New(env, 0);
    Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
    const size_t n = b.Length() / kPrimaryOnlyRecord;
    if (!n) return Napi::Number::New(env, 0);
    std::vector<ConnKey> keys(n);
    std::vector<OutVal> vals(n);
    for (size_t i = 0; i < n; i++) {
      const uint8_t* r = b.Data() + i * kPrimaryOnlyRecord;
      memcpy(&keys[i], r, sizeof(ConnKey));
      r += sizeof(ConnKey);
      memset(&vals[i], 0, sizeof(OutVal));
      memcpy(&vals[i].dseq, r, 4);
      memcpy(&vals[i].dts, r + 4, 4);
      vals[i].flags = r[8];
      vals[i].wscale_p = r[9];
      vals[i].wscale_s = r[10];
    }
    __u32 count = static_cast<__u32>(n);
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
    if (bpf_map_update_batch(out_fd_, keys.data(), vals.data(), &count, &opts) != 0 && count > n) count = 0;
    return Napi::Number::New(env, count);
  }

  // released(client, service, cport, sport) -> { segments, bytes } | null: what left in the kernel.
  Napi::Value Released(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (out_fd_ < 0 || info.Length() < 4) return env.Null();
    ConnKey k = KeyOf(info);
    OutVal v;
    if (bpf_map_lookup_elem(out_fd_, &k, &v) != 0) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    o.Set("segments", Napi::Number::New(env, static_cast<double>(v.segments)));
    o.Set("bytes", Napi::Number::New(env, static_cast<double>(v.bytes)));
    return o;
  }

  // run(program, packet: Buffer, mark, gsoSize?, gsoSegs?) -> { ret, packet: Buffer }: one run of a
  // loaded program on `packet` (BPF_PROG_TEST_RUN; a frame for the tc programs, an IP packet for the
  // match), as a GSO packet of segments of gsoSize bytes where given.
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!obj_ || info.Length() < 3 || !info[0].IsString() || !info[1].IsBuffer()) return env.Null();
    std::string name = info[0].As<Napi::String>();
    struct bpf_program* prog = bpf_object__find_program_by_name(obj_, name.c_str());
    if (!prog) return env.Null();
    Napi::Buffer<uint8_t> in = info[1].As<Napi::Buffer<uint8_t>>();
    std::vector<uint8_t> out(in.Length() + 256);
    struct __sk_buff ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.mark = info[2].As<Napi::Number>().Uint32Value();
    if (info.Length() > 4 && info[3].IsNumber() && info[4].IsNumber()) {
      ctx.gso_size = info[3].As<Napi::Number>().Uint32Value();
      ctx.gso_segs = info[4].As<Napi::Number>().Uint32Value();
    }
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.Data(), .data_out = out.data(), .data_size_in = static_cast<uint32_t>(in.Length()),
                .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);
    if (bpf_prog_test_run_opts(bpf_program__fd(prog), &opts) != 0) {
      Napi::Error::New(env, std::string("bpf_prog_test_run: ") + strerror(errno)).ThrowAsJavaScriptException();
      return env.Null();
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("ret", Napi::Number::New(env, static_cast<int32_t>(opts.retval)));
    o.Set("packet", Napi::Buffer<uint8_t>::Copy(env, out.data(), opts.data_size_out));
    return o;
  }

  static uint32_t U32(const Napi::Object& o, const char* name) { return o.Get(name).As<Napi::Number>().Uint32Value(); }

  // mergeStart(client, service, cport, sport, init) -> boolean: the kernel merges this connection
  // from now on. init: { dseq, dts, timestamps, wscaleP, wscaleS, relNxt, ackP, ackS, winP, winS,
  // ackSent, edgeSent, tsvalMax, tsecr }.
  Napi::Value MergeStart(const Napi::CallbackInfo& info) { return PutMerge(info, false); }

  // mergeResume(client, service, cport, sport, init) -> boolean: a connection the bridge took back
  // (MERGE_QUEUE) returns to the kernel's merge with nothing waiting on either side: its entry is
  // rewritten under its lock, then its hint from it by the control program, under the same lock
  // (until then the match sends P's segments to the queue, where the bridge would take it again:
  // never out unmerged). init as for mergeStart.
  Napi::Value MergeResume(const Napi::CallbackInfo& info) { return PutMerge(info, true); }

  Napi::Value PutMerge(const Napi::CallbackInfo& info, bool resume) {
    Napi::Env env = info.Env();
    if (merge_fd_ < 0 || info.Length() < 5 || !info[4].IsObject()) return Napi::Boolean::New(env, false);
    ConnKey k = KeyOf(info);
    Napi::Object in = info[4].As<Napi::Object>();
    struct merge_val v;
    memset(&v, 0, sizeof(v));
    v.mode = MERGE_KERNEL;
    v.flags = in.Get("timestamps").ToBoolean() ? MERGE_F_TS : 0;
    // A server-initiated connection starts before either server acknowledged the client.
    if (in.Get("acksKnown").ToBoolean()) v.flags |= MERGE_F_ACK_P | MERGE_F_ACK_S | MERGE_F_SENT;
    v.dseq = U32(in, "dseq");
    v.dts = U32(in, "dts");
    v.wscale_p = static_cast<uint8_t>(U32(in, "wscaleP"));
    v.wscale_s = static_cast<uint8_t>(U32(in, "wscaleS"));
    v.ahead = SIDE_NONE;
    v.rel_nxt = U32(in, "relNxt");
    v.ack_p = U32(in, "ackP");
    v.ack_s = U32(in, "ackS");
    v.win_p = U32(in, "winP");
    v.win_s = U32(in, "winS");
    v.ack_sent = U32(in, "ackSent");
    v.edge_sent = U32(in, "edgeSent");
    v.tsval_max = U32(in, "tsvalMax");
    v.tsecr = U32(in, "tsecr");
    struct merge_hint h;
    memset(&h, 0, sizeof(h));
    h.mode = MERGE_KERNEL;
    h.p_next = v.rel_nxt + v.dseq;
    h.p_room = MERGE_PENDING;  // nothing waits: every range free
    h.ts_on = (v.flags & MERGE_F_TS) ? 1 : 0;
    if (resume) {
      // The entry first, under its lock; then its hint, from it, under the
      // same lock (the control program): a decision the programs take in
      // between writes its own hint there too, and a system call's copy
      // landing after it would undo it. Once the entry is written the kernel
      // merges the connection: until its hint says so, P's segments go to
      // the queue, where the bridge takes it again.
      if (bpf_map_update_elem(merge_fd_, &k, &v, BPF_EXIST | BPF_F_LOCK) != 0) return Napi::Boolean::New(env, false);
      struct merge_ctl c;
      // (Should the program not run — a bug — or find no hint to write, the hint by system call:
      // the entry is written already, and without a hint the match would send every segment of P's
      // to the queue.)
      if (!RunCtl(MERGE_OP_HINT, k, &c) || !c.found) bpf_map_update_elem(hint_fd_, &k, &h, BPF_ANY);
      return Napi::Boolean::New(env, true);
    }
    // The hint first: a P segment that finds the state finds its hint too.
    if (bpf_map_update_elem(hint_fd_, &k, &h, BPF_ANY) != 0) return Napi::Boolean::New(env, false);
    if (bpf_map_update_elem(merge_fd_, &k, &v, BPF_NOEXIST) != 0) {
      bpf_map_delete_elem(hint_fd_, &k);
      return Napi::Boolean::New(env, false);
    }
    return Napi::Boolean::New(env, true);
  }

  // handshakes(on) -> boolean: whether the programs merge handshakes (peer_cfg.handshake).
  Napi::Value Handshakes(const Napi::CallbackInfo& info) { return SetPeerFlag(info, &peer_cfg::handshake); }

  // alone(on) -> boolean: whether the secondary failed (peer_cfg.alone): P's segments of connections
  // merged in the kernel go to the bridge's queue, which turns each primary-only as it comes.
  Napi::Value Alone(const Napi::CallbackInfo& info) { return SetPeerFlag(info, &peer_cfg::alone); }

  Napi::Value SetPeerFlag(const Napi::CallbackInfo& info, __u32 peer_cfg::*field) {
    Napi::Env env = info.Env();
    if (peer_fd_ < 0 || info.Length() < 1) return Napi::Boolean::New(env, false);
    struct peer_cfg v;
    uint32_t zero = 0;
    if (bpf_map_lookup_elem(peer_fd_, &zero, &v) != 0) return Napi::Boolean::New(env, false);
    v.*field = info[0].ToBoolean() ? 1 : 0;
    return Napi::Boolean::New(env, bpf_map_update_elem(peer_fd_, &zero, &v, BPF_ANY) == 0);
  }

  // stashedConns() -> Buffer: the connections the stash keeps P's stolen segments of (struct
  // conn_key each, once), for the bridge to take first when the secondary failed.
  Napi::Value StashedConns(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<uint8_t> out;
    if (stash_fd_ >= 0) {
      struct stash_key k, next;
      void* prev = nullptr;
      std::set<std::tuple<uint32_t, uint32_t, uint16_t, uint16_t>> seen;
      while (bpf_map_get_next_key(stash_fd_, prev, &next) == 0) {
        k = next;
        prev = &k;
        if (!seen.insert({k.conn.client, k.conn.service, k.conn.cport, k.conn.sport}).second) continue;
        const uint8_t* p = reinterpret_cast<const uint8_t*>(&k.conn);
        out.insert(out.end(), p, p + sizeof(k.conn));
      }
    }
    return Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size());
  }

  // drainEvents() -> Buffer: what the programs told since the last call (struct
  // kernel_event each, in order), without a system call when there are none.
  Napi::Value DrainEvents(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    drained_.clear();
    if (ring_) ring_buffer__consume(ring_);
    return Napi::Buffer<uint8_t>::Copy(env, drained_.data(), drained_.size());
  }

  // heldHandshakes(maxAgeMs) -> [{ client, clientPort, servicePort, ack, syn, isn, tsval, mss, window,
  // wscale, layout }]: P's SYN-ACKs (and SYNs) the kernel holds for S's, held less than maxAgeMs ago (the
  // secondary failed: P's TCP is prompted to send a SYN-ACK again; a SYN, the bridge sends again itself).
  Napi::Value HeldHandshakes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    if (hs_fd_ < 0 || info.Length() < 1 || !info[0].IsNumber()) return out;
    uint64_t max_ns = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()) * 1000000ull;
    uint64_t now = MonotonicNs();
    uint32_t n = 0;
    auto take = [&](const struct conn_key& k, const struct hs_val& v) {
      if (v.state != HS_P_HELD || now - v.held_ns > max_ns) return;
      Napi::Object o = Napi::Object::New(env);
      o.Set("client", Napi::Number::New(env, ntohl(k.client)));
      o.Set("clientPort", Napi::Number::New(env, ntohs(k.cport)));
      o.Set("servicePort", Napi::Number::New(env, ntohs(k.sport)));
      o.Set("ack", Napi::Number::New(env, v.ack));
      o.Set("syn", Napi::Boolean::New(env, v.syn != 0));
      o.Set("isn", Napi::Number::New(env, v.isn));
      o.Set("tsval", Napi::Number::New(env, v.tsval));
      o.Set("mss", Napi::Number::New(env, v.mss));
      o.Set("window", Napi::Number::New(env, v.win));
      o.Set("wscale", Napi::Number::New(env, v.wscale));
      o.Set("layout", Napi::Number::New(env, v.layout));
      out.Set(n++, o);
    };
    // The whole map, kHsBatch entries per system call (BPF_MAP_LOOKUP_BATCH): it can hold
    // HS_ENTRIES (16,384), read at the secondary's failure, in a connect storm too.
    constexpr uint32_t kHsBatch = 1024;
    std::vector<struct conn_key> keys(kHsBatch);
    std::vector<struct hs_val> vals(kHsBatch);
    uint32_t token = 0;
    bool first = true;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    for (;;) {
      __u32 count = kHsBatch;
      uint32_t next = 0;
      int err = bpf_map_lookup_batch(hs_fd_, first ? nullptr : &token, &next, keys.data(), vals.data(), &count, &opts);
      int why = errno;
      for (__u32 i = 0; i < count && i < kHsBatch; i++) take(keys[i], vals[i]);
      if (err != 0 && why != ENOENT) {
        Napi::Error::New(env, std::string("could not read the held handshakes: ") + strerror(why)).ThrowAsJavaScriptException();
        return out;
      }
      if (err != 0) break;  // ENOENT: the end (the last batch read above)
      token = next;
      first = false;
    }
    return out;
  }

  static int OnEvent(void* ctx, void* data, size_t size) {
    auto* self = static_cast<Xlate*>(ctx);
    if (size < sizeof(struct kernel_event)) return 0;
    const uint8_t* p = static_cast<const uint8_t*>(data);
    self->drained_.insert(self->drained_.end(), p, p + sizeof(struct kernel_event));
    return 0;
  }

  // Runs the merge control program (tcpfo_merge_ctl) with request `op` for `key`; its answer in `c`.
  // False if it could not run (errno says why).
  bool RunCtl(uint32_t op, const ConnKey& key, struct merge_ctl* c) {
    struct bpf_program* prog = obj_ ? bpf_object__find_program_by_name(obj_, "tcpfo_merge_ctl") : nullptr;
    if (!prog) {
      errno = ENOENT;
      return false;
    }
    constexpr size_t kEth = 14;
    std::vector<uint8_t> in(kEth + sizeof(struct merge_ctl), 0);
    in[12] = 0x08;  // an IPv4 frame, as far as the test run's Ethernet parse goes
    memset(c, 0, sizeof(*c));
    c->op = op;
    c->key = key;
    memcpy(in.data() + kEth, c, sizeof(*c));
    std::vector<uint8_t> out(in.size() + 64);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(), .data_out = out.data(), .data_size_in = static_cast<uint32_t>(in.size()),
                .data_size_out = static_cast<uint32_t>(out.size()), .repeat = 1);
    if (bpf_prog_test_run_opts(bpf_program__fd(prog), &opts) != 0) return false;
    if (opts.retval != 0 || opts.data_size_out < in.size()) {
      errno = EPROTO;
      return false;
    }
    memcpy(c, out.data() + kEth, sizeof(*c));
    return true;
  }

  // mergeTake(client, service, cport, sport) -> snapshot | null: the bridge takes the connection
  // (under its lock, through the control program); its state as the kernel left it.
  Napi::Value MergeTake(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!obj_ || info.Length() < 4) return env.Null();
    struct merge_ctl c;
    if (!RunCtl(MERGE_OP_TAKE, KeyOf(info), &c)) {
      Napi::Error::New(env, std::string("the merge control program failed: ") + strerror(errno)).ThrowAsJavaScriptException();
      return env.Null();
    }
    if (!c.found) return env.Null();
    const struct merge_snap& s = c.snap;
    Napi::Object o = Napi::Object::New(env);
    auto n = [&](const char* name, double v) { o.Set(name, Napi::Number::New(env, v)); };
    n("mode", s.mode);
    n("flags", s.flags);
    n("handover", s.handover);
    n("ahead", s.ahead);
    n("relNxt", s.rel_nxt);
    n("ackP", s.ack_p);
    n("ackS", s.ack_s);
    n("winP", s.win_p);
    n("winS", s.win_s);
    n("ackSent", s.ack_sent);
    n("edgeSent", s.edge_sent);
    n("tsvalMax", s.tsval_max);
    n("tsecr", s.tsecr);
    n("waitMs", s.wait_ms);
    n("released", static_cast<double>(s.released));
    n("bytes", static_cast<double>(s.bytes));
    // The waiting ranges, oldest first: [end, …] (each starts where the previous ends, the first at relNxt).
    Napi::Array ends = Napi::Array::New(env, s.npend);
    for (uint32_t i = 0; i < s.npend && i < MERGE_PENDING; i++) ends.Set(i, Napi::Number::New(env, s.pend_end[(s.head + i) & (MERGE_PENDING - 1)]));
    o.Set("pending", ends);
    // Their digests (bpf/digest.h), 8 bytes each in host order: what the bridge compares the
    // other side's copies with where the bytes were dropped here (S's first arrivals).
    std::vector<uint64_t> digests;
    for (uint32_t i = 0; i < s.npend && i < MERGE_PENDING; i++) digests.push_back(s.pend_digest[(s.head + i) & (MERGE_PENDING - 1)]);
    o.Set("digests", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(digests.data()), digests.size() * 8));
    o.Set("stashed", TakeStash(env, c.key, s));
    return o;
  }

  // The copies of P's stolen segments the egress program kept for this connection (bpf/maps.h
  // `stash`): its waiting first arrivals when P was ahead, and the one stolen at the handover.
  // Each is taken (deleted); the IP packets as P's TCP sent them.
  Napi::Array TakeStash(Napi::Env env, const ConnKey& key, const struct merge_snap& s) {
    Napi::Array out = Napi::Array::New(env);
    if (stash_fd_ < 0) return out;
    std::vector<uint32_t> idxs;
    if (s.ahead == SIDE_P) {
      for (uint32_t i = 0; i < s.npend && i < MERGE_PENDING; i++) idxs.push_back((s.head + i) & (MERGE_PENDING - 1));
    }
    struct stash_key k;
    memset(&k, 0, sizeof(k));
    k.conn = key;
    k.dseq = s.dseq;
    std::vector<uint8_t> buf(sizeof(struct stash_val));
    auto* v = reinterpret_cast<struct stash_val*>(buf.data());
    auto take = [&](uint32_t idx) {
      k.idx = idx;
      if (bpf_map_lookup_elem(stash_fd_, &k, v) != 0) return false;
      bpf_map_delete_elem(stash_fd_, &k);
      if (v->len >= STASH_MIN_PACKET && v->len <= STASH_MAX_PACKET) out.Set(out.Length(), Napi::Buffer<uint8_t>::Copy(env, v->pkt, v->len));
      return true;
    };
    for (uint32_t idx : idxs) take(idx);
    // The packet stolen at the handover, one segment at each index from STASH_HANDOVER on, as
    // far as they go: one lookup where none was kept (most connections).
    for (uint32_t c = 0; c < MERGE_SEG_CHUNKS && take(STASH_HANDOVER + c); c++) {
    }
    return out;
  }

  // peer(mac: Buffer(6)) -> boolean: only frames from this MAC are the secondary's copies.
  Napi::Value Peer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (peer_fd_ < 0 || info.Length() < 1 || !info[0].IsBuffer() || info[0].As<Napi::Buffer<uint8_t>>().Length() != 6) return Napi::Boolean::New(env, false);
    struct peer_cfg v;
    memset(&v, 0, sizeof(v));
    uint32_t key = 0;
    bpf_map_lookup_elem(peer_fd_, &key, &v);  // keeps `handshake`
    memcpy(v.mac, info[0].As<Napi::Buffer<uint8_t>>().Data(), 6);
    v.set = 1;
    v.ifindex = ifindex_;
    uint32_t zero = 0;
    return Napi::Boolean::New(env, bpf_map_update_elem(peer_fd_, &zero, &v, BPF_ANY) == 0);
  }

  // remove(client, service, cport, sport): from every map.
  Napi::Value Remove(const Napi::CallbackInfo& info) {
    if (map_fd_ >= 0 && info.Length() >= 4) {
      ConnKey k = KeyOf(info);
      bpf_map_delete_elem(map_fd_, &k);
      if (out_fd_ >= 0) bpf_map_delete_elem(out_fd_, &k);
      if (merge_fd_ >= 0) bpf_map_delete_elem(merge_fd_, &k);
      if (hint_fd_ >= 0) bpf_map_delete_elem(hint_fd_, &k);
    }
    return info.Env().Undefined();
  }

  // get(client, service, cport, sport) -> { packets, ageMs, ackMax?, nxtMax? } | null
  Napi::Value Get(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (map_fd_ < 0 || info.Length() < 4) return env.Null();
    ConnKey k = KeyOf(info);
    ConnVal v;
    if (bpf_map_lookup_elem(map_fd_, &k, &v) != 0) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    o.Set("packets", Napi::Number::New(env, static_cast<double>(v.packets)));
    if (v.packets) o.Set("ageMs", Napi::Number::New(env, static_cast<double>(MonotonicNs() - v.seen_ns) / 1e6));
    if (v.flags & CONN_F_ACK_SEEN) {
      o.Set("ackMax", Napi::Number::New(env, v.ack_max));
      o.Set("nxtMax", Napi::Number::New(env, v.nxt_max));
    }
    return o;
  }

  // duplicateTo(to: Buffer(6) | null, from: Buffer(6)): copy every client frame for the service to
  // MAC `to`, with source MAC `from` (lan.mode: switch), or stop.
  Napi::Value DuplicateTo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (dup_fd_ < 0) return Napi::Boolean::New(env, false);
    DupCfg v;
    memset(&v, 0, sizeof(v));
    if (info.Length() > 1 && info[0].IsBuffer() && info[1].IsBuffer() && info[0].As<Napi::Buffer<uint8_t>>().Length() == 6 &&
        info[1].As<Napi::Buffer<uint8_t>>().Length() == 6) {
      v.enabled = 1;
      v.ifindex = ifindex_;
      memcpy(v.macs, info[0].As<Napi::Buffer<uint8_t>>().Data(), 6);
      memcpy(v.macs + 6, info[1].As<Napi::Buffer<uint8_t>>().Data(), 6);
    }
    uint32_t zero = 0;
    return Napi::Boolean::New(env, bpf_map_update_elem(dup_fd_, &zero, &v, BPF_ANY) == 0);
  }

  // One counter of bpf/maps.h, summed over CPUs (0 if it cannot be read).
  uint64_t CounterSum(uint32_t k) {
    int ncpu = libbpf_num_possible_cpus();
    if (cnt_fd_ < 0 || ncpu <= 0) return 0;
    std::vector<uint64_t> vals(ncpu);
    if (bpf_map_lookup_elem(cnt_fd_, &k, vals.data()) != 0) return 0;
    uint64_t sum = 0;
    for (int c = 0; c < ncpu; c++) sum += vals[c];
    return sum;
  }

  // counters() -> { translated, synsPassed, duplicated, outOfWindow, released, releaseRefused, ... }: summed over CPUs.
  Napi::Value Counters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    static_assert(COUNT_MAX == 26, "a name for each counter of bpf/maps.h");
    const char* names[COUNT_MAX] = {"translated", "synsPassed", "duplicated", "outOfWindow", "released", "releaseRefused",
                                    "mergedP", "mergedS", "mergeHeld", "mergeAckDropped", "handover", "handoverStolen", "stashed",
                                    "handshakesHeld", "handshakesMerged", "handshakesToBridge", "handshakesMergedP",
                                    "mergeAgain", "clientFins", "ended", "clientResets", "eventsLost", "dsackCleared",
                                    "fromSecondary", "mergeGso", "mergedBytes"};
    for (uint32_t k = 0; k < COUNT_MAX; k++) o.Set(names[k], Napi::Number::New(env, static_cast<double>(CounterSum(k))));
    return o;
  }

  // secondarySilentMs() -> ms since the secondary's last segment reached the ingress program (the
  // latest of every CPU's), or null if none has: one lookup, when its heartbeats fell silent.
  Napi::Value SecondarySilentMs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int ncpu = libbpf_num_possible_cpus();
    uint32_t zero = 0;
    if (seen_fd_ < 0 || ncpu <= 0) return env.Null();
    std::vector<uint64_t> vals(ncpu);
    if (bpf_map_lookup_elem(seen_fd_, &zero, vals.data()) != 0) return env.Null();
    uint64_t last = 0;
    for (int c = 0; c < ncpu; c++) last = std::max(last, vals[c]);
    if (!last) return env.Null();
    uint64_t now = MonotonicNs();
    return Napi::Number::New(env, now > last ? static_cast<double>(now - last) / 1e6 : 0.0);
  }


  // orderDone(Uint32Array(ORDER_SLOTS)) -> boolean: the verdicts the bridge gave, by client slot
  // (bpf/maps.h `order`; the bridge alone writes this entry).
  // orderHold(ms): how long a slot holds its client's answers at most (ORDER_HOLD; 0: for ever).
  Napi::Value OrderHold(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (order_fd_ < 0 || info.Length() < 1 || !info[0].IsNumber()) return Napi::Boolean::New(env, false);
    struct order_slots v = {};
    v.n[0] = info[0].As<Napi::Number>().Uint32Value();
    uint32_t k = ORDER_HOLD;
    return Napi::Boolean::New(env, bpf_map_update_elem(order_fd_, &k, &v, BPF_ANY) == 0);
  }

  // Mapped, each count that changed is one aligned 32-bit store, so the match
  // never reads a torn count (the bridge alone writes this entry).
  Napi::Value OrderDone(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (order_fd_ < 0 || info.Length() < 1 || !info[0].IsTypedArray()) return Napi::Boolean::New(env, false);
    Napi::Uint32Array a = info[0].As<Napi::Uint32Array>();
    if (a.ElementLength() != ORDER_SLOTS) return Napi::Boolean::New(env, false);
    if (order_mem_) {
      uint32_t* done = order_mem_[ORDER_DONE].n;
      const uint32_t* want = a.Data();
      for (unsigned i = 0; i < ORDER_SLOTS; i++)
        if (__atomic_load_n(&done[i], __ATOMIC_RELAXED) != want[i]) __atomic_store_n(&done[i], want[i], __ATOMIC_RELEASE);
      return Napi::Boolean::New(env, true);
    }
    struct order_slots v;
    memcpy(v.n, a.Data(), sizeof(v.n));
    uint32_t k = ORDER_DONE;
    return Napi::Boolean::New(env, bpf_map_update_elem(order_fd_, &k, &v, BPF_ANY) == 0);
  }

  // orderMapped() -> boolean: the order's counts are written by stores into the mapped map, not system calls.
  Napi::Value OrderMapped(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), order_mem_ != nullptr); }

  // orderQueued() -> Uint32Array(ORDER_SLOTS) | null: the match's count of P's segments sent to the queue, by slot.
  Napi::Value OrderQueued(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    struct order_slots v;
    uint32_t k = ORDER_QUEUED;
    if (order_mem_) {
      for (unsigned i = 0; i < ORDER_SLOTS; i++) v.n[i] = __atomic_load_n(&order_mem_[ORDER_QUEUED].n[i], __ATOMIC_RELAXED);
    } else if (order_fd_ < 0 || bpf_map_lookup_elem(order_fd_, &k, &v) != 0) {
      return env.Null();
    }
    Napi::Uint32Array a = Napi::Uint32Array::New(env, ORDER_SLOTS);
    memcpy(a.Data(), v.n, sizeof(v.n));
    return a;
  }

  // service(addr, port): the client's SYNs to addr:port pass as they are.
  Napi::Value Service(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (svc_fd_ < 0 || info.Length() < 2) return Napi::Boolean::New(env, false);
    SvcKey k = {htonl(info[0].As<Napi::Number>().Uint32Value()), htons(static_cast<uint16_t>(info[1].As<Napi::Number>().Uint32Value())), 0};
    uint8_t one = 1;
    return Napi::Boolean::New(env, bpf_map_update_elem(svc_fd_, &k, &one, BPF_ANY) == 0);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Teardown();
    return info.Env().Undefined();
  }

  // Xlate.detach(ifname): removes our filters (ingress and egress) from an interface, whoever
  // made its qdisc (what a killed bridge left). -> whether there was one
  static Napi::Value DetachStatic(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) return Napi::Boolean::New(env, false);
    std::string ifname = info[0].As<Napi::String>();
    unsigned idx = if_nametoindex(ifname.c_str());
    if (!idx) return Napi::Boolean::New(env, false);
    libbpf_set_print(LibbpfQuiet);
    const bool in = Detach(idx, BPF_TC_INGRESS);
    const bool out = Detach(idx, BPF_TC_EGRESS);
    return Napi::Boolean::New(env, in || out);
  }

  // Xlate.unpin(path): removes a pinned match a killed bridge left. -> whether there was one
  static Napi::Value UnpinStatic(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) return Napi::Boolean::New(env, false);
    std::string path = info[0].As<Napi::String>();
    return Napi::Boolean::New(env, unlink(path.c_str()) == 0);
  }

  // Xlate.digest(buf) -> bigint: the digest the kernel merge compares a range's bytes by
  // (bpf/digest.h), for the bridge to compare a copy with one whose bytes the kernel dropped.
  static Napi::Value DigestStatic(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBuffer()) {
      Napi::TypeError::New(env, "digest(buffer)").ThrowAsJavaScriptException();
      return env.Null();
    }
    Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
    return Napi::BigInt::New(env, static_cast<uint64_t>(digest_of(b.Data(), static_cast<uint32_t>(b.Length()))));
  }

  unsigned ifindex_ = 0;
  std::string pin_;
  bool pinned_ = false;
  int out_fd_ = -1;
  int merge_fd_ = -1;
  int hint_fd_ = -1;
  int peer_fd_ = -1;
  struct bpf_object* obj_ = nullptr;
  int map_fd_ = -1;
  int svc_fd_ = -1;
  int cnt_fd_ = -1;
  int seen_fd_ = -1;
  int dup_fd_ = -1;
  int order_fd_ = -1;
  struct order_slots* order_mem_ = nullptr;  // the order map, mapped (null: written by system calls)
  // The order map's bytes as mapped: an array's values lie back to back (order_slots is a multiple of 8 bytes).
  static size_t OrderBytes() {
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return (ORDER_ENTRIES * sizeof(struct order_slots) + page - 1) / page * page;
  }
  int stash_fd_ = -1;
  bool ingress_ = false;
  bool egress_ = false;
  int hs_fd_ = -1;
  struct ring_buffer* ring_ = nullptr;
  std::vector<uint8_t> drained_;
};

}  // namespace

void InitXlate(Napi::Env env, Napi::Object exports) { Xlate::Init(env, exports); }
