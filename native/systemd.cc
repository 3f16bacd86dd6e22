// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (READY=1,
// WATCHDOG=1, STATUS=…, STOPPING=1). Node's dgram cannot send to a Unix
// socket. An abstract socket ("@…") is supported as systemd hands it out.
#include <napi.h>

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

namespace {

// sdNotify(message) -> whether it was sent (false without $NOTIFY_SOCKET)
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return Napi::Boolean::New(env, false);
  const char* path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) return Napi::Boolean::New(env, false);
  size_t len = strlen(path);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  if (len >= sizeof(sa.sun_path)) return Napi::Boolean::New(env, false);
  memcpy(sa.sun_path, path, len);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = 0;
  socklen_t salen = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + len);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::Boolean::New(env, false);
  std::string msg = info[0].As<Napi::String>();
  ssize_t r = sendto(fd, msg.data(), msg.size(), MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&sa), salen);
  close(fd);
  return Napi::Boolean::New(env, r == static_cast<ssize_t>(msg.size()));
}

}  // namespace

void InitSystemd(Napi::Env env, Napi::Object exports) { exports.Set("sdNotify", Napi::Function::New(env, SdNotify)); }
