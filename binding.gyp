{
  "targets": [
    {
      "target_name": "tcpfo_nfqueue",
      "sources": ["native/nfqueue.cc", "native/caps.cc", "native/fds.cc", "native/presence.cc", "native/xlate.cc", "native/systemd.cc", "native/lock.cc", "native/heartbeat.cc", "native/sockdiag.cc", "native/realtime.cc", "native/ccreset.cc"],
      "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lnetfilter_queue", "-lnfnetlink", "-lpthread", "-lbpf"],
      "actions": [
        {
          "action_name": "xlate_bpf",
          "inputs": ["native/xlate.bpf.c", "native/bpf/maps.h", "native/bpf/tcp.h", "native/bpf/merge.h", "native/bpf/handshake.h", "native/bpf/digest.h"],
          "outputs": ["<(PRODUCT_DIR)/xlate.bpf.o"],
          "action": ["clang", "-O2", "-g", "-target", "bpf", "-I/usr/include/<!(uname -m)-linux-gnu", "-Inative", "-Wall", "-c", "native/xlate.bpf.c", "-o", "<(PRODUCT_DIR)/xlate.bpf.o"]
        },
        {
          "action_name": "ccreset_bpf",
          "inputs": ["native/ccreset.bpf.c", "native/bpf/ccreset.h"],
          "outputs": ["<(PRODUCT_DIR)/ccreset.bpf.o"],
          "action": ["clang", "-O2", "-g", "-target", "bpf", "-I/usr/include/<!(uname -m)-linux-gnu", "-Inative", "-Wall", "-c", "native/ccreset.bpf.c", "-o", "<(PRODUCT_DIR)/ccreset.bpf.o"]
        }
      ]
    }
  ]
}
