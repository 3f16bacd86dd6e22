{
  "targets": [
    {
      "target_name": "tcpfo_nfqueue",
      "sources": ["native/nfqueue.cc", "native/caps.cc", "native/fds.cc", "native/presence.cc"],
      "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lnetfilter_queue", "-lnfnetlink", "-lpthread"]
    }
  ]
}
