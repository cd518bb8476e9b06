"""nvcc through a genrule: simpler than a CUDA crosstool (docs/design.md, section 5).

configure.sh --cuda writes --define=TFKAF_NVCC=<path> and
--define=TFKAF_CUDA_GENCODE=<flags> into .bazelrc.
"""

def cuda_objects(name, srcs, hdrs):
    """One position-independent object per .cu.cc file, for cc_binary srcs."""
    outs = []
    for src in srcs:
        out = src.replace("/", "_").replace(".cu.cc", "_cu.o")
        native.genrule(
            name = out.replace(".", "_"),
            srcs = [src] + hdrs,
            outs = [out],
            cmd = " ".join([
                "$(TFKAF_NVCC)",
                "-c -x cu -std=c++17 -O3",
                "--expt-relaxed-constexpr",
                "-Xcompiler -fPIC,-fvisibility=hidden",
                "-DTFKAF_WITH_CUDA=1",
                "$(TFKAF_CUDA_GENCODE)",
                "-I.",
                "-o $@",
                "$(location %s)" % src,
            ]),
            tags = ["local"],
        )
        outs.append(out)
    native.filegroup(name = name, srcs = outs)
