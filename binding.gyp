{
  "targets": [
    {
      "target_name": "glimpse_native",
      "sources": [
        "native/addon.cc",
        "native/threadpool.cc",
        "native/gemm.cc",
        "native/elementwise.cc",
        "native/reduce.cc",
        "native/attention.cc",
        "native/indexing.cc",
        "native/optim.cc",
        "native/fused.cc"
      ],
      "cflags_cc!": [
        "-fno-exceptions",
        "-O2",
        "-O3",
        "-Os"
      ],
      "cflags_cc": [
        "-std=c++17",
        "-O3",
        "-fexceptions",
        "-fno-math-errno",
        "-Wall",
        "-Wno-unused-function"
      ],
      "cflags!": [
        "-O2"
      ],
      "ldflags": [
        "-pthread"
      ]
    }
  ],
  "conditions": [
    [
      "'<!(sh scripts/mpi-flags.sh --available)'=='1'",
      {
        "targets": [
          {
            "target_name": "glimpse_mpi",
            "sources": [
              "native/mpi.cc"
            ],
            "cflags_cc!": [
              "-fno-exceptions",
              "-O2",
              "-O3",
              "-Os"
            ],
            "cflags_cc": [
              "-std=c++17",
              "-O2",
              "-Wall",
              "<!@(sh scripts/mpi-flags.sh --compile)"
            ],
            "libraries": [
              "<!@(sh scripts/mpi-flags.sh --link)"
            ],
            "ldflags": [
              "-pthread"
            ]
          }
        ]
      }
    ]
  ]
}
