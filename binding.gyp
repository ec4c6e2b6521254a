{
  "targets": [
    {
      "target_name": "reuseport",
      "sources": ["native/binding.cc"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "xcode_settings": {
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CPLUSPLUSFLAGS": ["-Wall", "-Wextra"]
      },
      "msvs_settings": {
        "VCCLCompilerTool": {"AdditionalOptions": ["/std:c++17"]}
      },
      "conditions": [
        ["OS=='win'", {"sources": ["native/socket_win.cc"]}, {"sources": ["native/socket_posix.cc"]}]
      ]
    }
  ]
}
