// Replays fuzz inputs through a target without libFuzzer (any compiler): every file named on
// the command line, or found in a folder named there, goes through LLVMFuzzerTestOneInput
// once. ctest runs this over test/fuzz/corpus/<target>/, so the seeds and every input that
// once crashed stay tested in the ordinary build.
//
// Outside AddressSanitizer the address space is capped (kReplayMemoryMiB), so an input
// that makes the code allocate without bound ends in std::bad_alloc, which the target does
// not catch: the test fails. Under ASan, ctest sets max_allocation_size_mb instead.
#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

constexpr rlim_t kReplayMemoryMiB = 2048;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#else
constexpr bool kAsan = false;
#endif

}  // namespace

int main(int argc, char** argv) {
  if (!kAsan) {
    rlimit lim{kReplayMemoryMiB << 20, kReplayMemoryMiB << 20};
    setrlimit(RLIMIT_AS, &lim);
  }
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    if (fs::is_directory(argv[i])) {
      for (const auto& e : fs::recursive_directory_iterator(argv[i]))
        if (e.is_regular_file()) files.push_back(e.path());
    } else {
      files.emplace_back(argv[i]);
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::fprintf(stderr, "replay: no inputs found\n");
    return 1;
  }
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "replay: cannot read %s\n", f.c_str());
      return 1;
    }
    std::vector<uint8_t> d((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::printf("replay: %s (%zu bytes)\n", f.c_str(), d.size());
    std::fflush(stdout);  // the last line names the input if it crashes
    LLVMFuzzerTestOneInput(d.data(), d.size());
  }
  std::printf("replay: %zu inputs, no finding\n", files.size());
  return 0;
}
