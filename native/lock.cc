// One bridge per node and instance: an exclusive flock(2) on a file in the
// state directory, held for the life of the process. The kernel releases it
// when the process dies, however it dies, so a killed bridge never blocks the
// next start; a second bridge of the same instance sees it taken and touches
// nothing. The holder writes its pid into the file for the message.
#include <napi.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <string>

namespace {

// lockFile(path) -> { fd } once the lock is ours (held until exit),
//                            { heldBy: pid } when another process holds it (0: unknown),
//                            { error: string } when the file cannot be opened.
Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  if (info.Length() < 1 || !info[0].IsString()) {
    r.Set("error", "lockFile(path): path must be a string");
    return r;
  }
  const std::string path = info[0].As<Napi::String>();
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    r.Set("error", std::string(strerror(errno)));
    return r;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) {
      close(fd);
      r.Set("error", std::string(strerror(err)));
      return r;
    }
    char buf[32] = {0};
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    long pid = n > 0 ? strtol(buf, nullptr, 10) : 0;
    r.Set("heldBy", Napi::Number::New(env, static_cast<double>(pid > 0 ? pid : 0)));
    return r;
  }
  // The lock holds whether or not the pid is written; the pid only makes the message better.
  char buf[32];
  int len = snprintf(buf, sizeof(buf), "%ld\n", static_cast<long>(getpid()));
  if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, len, 0) != len) r.Set("pidUnwritten", true);
  r.Set("fd", Napi::Number::New(env, fd));
  return r;
}

}  // namespace

void InitLock(Napi::Env env, Napi::Object exports) { exports.Set("lockFile", Napi::Function::New(env, LockFile)); }
