// Real-time scheduling for the bridge's two time-critical threads: the ARP
// answers for the service address (presence.cc) and the heartbeat thread
// (heartbeat.cc).
//
// Both run apart from the JS event loop so that a busy loop is not taken for
// a dead node. On a node whose cores are all busy they still waited for a
// core like any other thread: at 100,000 connections a primary answered the
// secondary's split-brain probe later than its 50 ms wait, and both nodes
// served the service address. Scheduled SCHED_FIFO, such a thread runs as
// soon as its packet is in, ahead of every ordinary process (keepalived
// offers the same for VRRP, `vrrp_rt_priority`).
//
// A real-time thread that never blocks would hold a core: each thread pauses
// once it handled BURST_MAX packets within BURST_WINDOW_NS, so a flood of
// them on the LAN costs one core a bounded share, and RLIMIT_RTTIME (set by
// allowRealtime, realtime.cc) ends a process whose real-time thread ran a
// whole RTTIME_SOFT_US without blocking.
#pragma once

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>

#include <atomic>

namespace tcpfo {

// The priority (1-99) threads take, 0 for none: set by allowRealtime().
extern std::atomic<int> realtime_priority;

// Run thread `t` at the configured real-time priority. -1: none configured;
// 0: done; else the errno (EPERM: no CAP_SYS_NICE and RLIMIT_RTPRIO too low,
// or systemd's RestrictRealtime=).
inline int EnterRealtime(pthread_t t) {
  int prio = realtime_priority.load();
  if (prio <= 0) return -1;
  struct sched_param sp = {};
  sp.sched_priority = prio;
  return pthread_setschedparam(t, SCHED_FIFO, &sp);
}

constexpr int BURST_MAX = 64;
constexpr int64_t BURST_WINDOW_NS = 1000000;

// Counts the packets a thread handles; past BURST_MAX within BURST_WINDOW_NS
// it sleeps out the window (at most 64,000 packets a second per thread).
class BurstLimit {
 public:
  void Count() {
    if (++n_ < BURST_MAX) return;
    int64_t now = Now();
    int64_t used = now - since_;
    if (used < BURST_WINDOW_NS) {
      struct timespec ts = {0, static_cast<long>(BURST_WINDOW_NS - used)};
      nanosleep(&ts, nullptr);
      now = Now();
      pauses_++;
    }
    n_ = 0;
    since_ = now;
  }
  uint64_t pauses() const { return pauses_.load(); }

 private:
  static int64_t Now() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }
  int n_ = 0;
  int64_t since_ = 0;
  std::atomic<uint64_t> pauses_{0};
};

}  // namespace tcpfo
