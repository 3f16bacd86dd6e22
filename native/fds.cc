// Close-on-exec for every descriptor of the process above stderr (issue 8 §5,
// clean up). libpcap's packet sockets, raw-socket's raw socket and
// libnetfilter_queue's netlink socket are opened without SOCK_CLOEXEC, so
// every `ip`, `ss` or `iptables` the bridge runs would inherit them and keep
// a capture, or a queue binding, alive after the bridge closed it.
#include <napi.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>

namespace {

// cloexecAll() -> number of descriptors that were not close-on-exec (-1: /proc unreadable)
Napi::Value CloexecAll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  DIR* d = opendir("/proc/self/fd");
  if (!d) return Napi::Number::New(env, -1);
  const int own = dirfd(d);
  int changed = 0;
  while (struct dirent* e = readdir(d)) {
    const int fd = atoi(e->d_name);  // "." and ".." give 0: skipped with stdio
    if (fd <= 2 || fd == own) continue;
    const int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || (flags & FD_CLOEXEC)) continue;
    if (fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0) changed++;
  }
  closedir(d);
  return Napi::Number::New(env, changed);
}

}  // namespace

void InitFds(Napi::Env env, Napi::Object exports) {
  exports.Set("cloexecAll", Napi::Function::New(env, CloexecAll));
}
