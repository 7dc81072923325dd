// Dataset readers: MNIST idx (raw and gzip), CIFAR-10 batches, MAT-file v5, MIL benchmarks, DeepRC TSVs.
// Each reader is tested on small files written here (valid, and broken in the ways real files break) and,
// when the shared data folder exists, on the real files against the statistics in shared/data/README.md.
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <typeinfo>
#include <vector>

#include <CLI/CLI.hpp>
#include <doctest/doctest.h>
#include <sys/stat.h>  // mkfifo
#include <sys/wait.h>  // WEXITSTATUS
#include <unistd.h>    // getpid
#include <zlib.h>

#include <hopgrad/hopgrad.h>
#include <hopgrad/nn/data/bytes.h>
#include <hopgrad/nn/data/cifar10.h>
#include <hopgrad/nn/data/deeprc.h>
#include <hopgrad/nn/data/matlab.h>
#include <hopgrad/nn/data/mil.h>
#include <hopgrad/nn/data/mnist.h>

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

// A scratch directory removed when the test ends.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("hopgrad_data_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path operator/(const std::string& name) const { return path / name; }
};

void write_file(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_text(const fs::path& path, const std::string& text) { write_file(path, Bytes(text.begin(), text.end())); }

void append_be32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

template <typename T> void append_le(Bytes& b, T v) {
  uint8_t raw[sizeof(T)];
  std::memcpy(raw, &v, sizeof(T));
  for (uint8_t byte : raw) b.push_back(byte);
}

// zlib (window_bits 15) or gzip (31) compression of `in`.
Bytes deflate_bytes(const Bytes& in, int window_bits) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  Bytes out(deflateBound(&zs, in.size()) + 32);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

Bytes idx_file(uint8_t ndims, const std::vector<uint32_t>& dims, const Bytes& data, uint8_t type = 0x08) {
  Bytes b{0, 0, type, ndims};
  for (uint32_t d : dims) append_be32(b, d);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

// The shared data folder: $HOPGRAD_DATA_DIR, else <source>/../shared/data when it exists.
std::optional<fs::path> data_dir() {
  if (const char* env = std::getenv("HOPGRAD_DATA_DIR"); env && *env) {
    if (fs::is_directory(env)) return fs::path(env);
    return std::nullopt;
  }
  const fs::path fallback = fs::path(HG_SOURCE_DIR) / ".." / "shared" / "data";
  if (fs::is_directory(fallback)) return fallback;
  return std::nullopt;
}

std::map<int64_t, int64_t> counts(const hg::Tensor& labels) {
  std::map<int64_t, int64_t> c;
  for (int64_t v : labels.to_vector<int64_t>()) ++c[v];
  return c;
}

}  // namespace

// ================================================================================================
// MNIST idx
// ================================================================================================

TEST_CASE("data mnist: idx images and labels, raw and gzip, with normalisation") {
  TempDir dir("mnist");
  // 3 images of 2×3 pixels; pixel k of image i is 40·i + k (so 0..86).
  Bytes pixels;
  for (int i = 0; i < 3; ++i) {
    for (int k = 0; k < 6; ++k) pixels.push_back(static_cast<uint8_t>(40 * i + k));
  }
  pixels[17] = 255;
  const Bytes images = idx_file(3, {3, 2, 3}, pixels);
  const Bytes labels = idx_file(1, {3}, {3, 0, 9});
  write_file(dir / "t10k-images-idx3-ubyte.gz", deflate_bytes(images, 31));
  write_file(dir / "t10k-labels-idx1-ubyte", labels);
  write_file(dir / "raw-images", images);

  const hg::Tensor raw = hg::data::read_mnist_images(dir / "raw-images");
  CHECK(raw.sizes() == hg::Shape{3, 1, 2, 3});
  CHECK(raw.dtype() == hg::kFloat32);
  const std::vector<float> v = raw.to_vector<float>();
  for (int k = 0; k < 18; ++k) CHECK(v[k] == doctest::Approx(pixels[k] / 255.0).epsilon(1e-6));
  CHECK(v[17] == 1.0f);

  const auto split = hg::data::load_mnist(dir.path, /*train=*/false,
                                          hg::data::MnistOptions().mean(hg::data::kMnistMean).std(hg::data::kMnistStd));
  const std::vector<float> z = split.images.to_vector<float>();
  for (int k = 0; k < 18; ++k) {
    CHECK(z[k] == doctest::Approx((pixels[k] / 255.0 - 0.1307) / 0.3081).epsilon(1e-6));
  }
  CHECK(split.labels.dtype() == hg::kInt64);
  CHECK(split.labels.to_vector<int64_t>() == std::vector<int64_t>{3, 0, 9});

  // A gzip file of two members (as `cat a.gz b.gz` makes) is one stream, as gunzip reads it.
  Bytes first(labels.begin(), labels.begin() + 5), second(labels.begin() + 5, labels.end());
  Bytes two = deflate_bytes(first, 31), tail = deflate_bytes(second, 31);
  two.insert(two.end(), tail.begin(), tail.end());
  write_file(dir / "two-members.gz", two);
  CHECK(hg::data::read_mnist_labels(dir / "two-members.gz").to_vector<int64_t>() == std::vector<int64_t>{3, 0, 9});
}

TEST_CASE("data mnist: broken idx files name the file, the offset and what was expected") {
  TempDir dir("mnist_bad");
  const Bytes good = idx_file(3, {2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  auto read = [&](const Bytes& bytes, const std::string& name = "bad.idx") {
    write_file(dir / name, bytes);
    return hg::data::read_mnist_images(dir / name);
  };
  CHECK_THROWS_WITH_AS(read(idx_file(3, {2, 2, 2}, Bytes(8), 0x09)),
                       doctest::Contains("bad.idx: byte offset 0: bad idx magic 0x00000903"), hg::Error);
  CHECK_THROWS_WITH_AS(read(Bytes{0x12, 0x34, 0x08, 0x03}), doctest::Contains("bad idx magic 0x12340803"), hg::Error);
  // Truncated inside the magic, inside a dimension, and inside the pixels.
  CHECK_THROWS_WITH_AS(read(Bytes(good.begin(), good.begin() + 3)),
                       doctest::Contains("byte offset 0: truncated: the idx magic number needs 4 bytes, only 3 remain"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(read(Bytes(good.begin(), good.begin() + 10)),
                       doctest::Contains("byte offset 8: truncated: an idx dimension size needs 4 bytes, only 2 remain"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(read(Bytes(good.begin(), good.end() - 3)),
                       doctest::Contains("byte offset 16: idx dims 2×2×2 need 8 data bytes, but the file has 5"),
                       hg::Error);
  // Counts that do not match the file size: trailing bytes, or a header count larger than the data.
  Bytes trailing = good;
  trailing.push_back(0);
  CHECK_THROWS_WITH_AS(read(trailing), doctest::Contains("the file has 9 after the header (expected total size 24)"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(read(idx_file(3, {3, 2, 2}, Bytes(8))), doctest::Contains("need 12 data bytes"), hg::Error);
  // Wrong number of dims for the reader.
  CHECK_THROWS_WITH_AS(read(idx_file(1, {4}, Bytes(4))), doctest::Contains("expected an idx3 array [N, rows, cols], got 1 dims"),
                       hg::Error);
  write_file(dir / "labels", idx_file(1, {3}, {1, 10, 2}));
  CHECK_THROWS_WITH_AS(hg::data::read_mnist_labels(dir / "labels"),
                       doctest::Contains("labels: byte offset 9: label 1 is 10, expected a digit class 0..9"), hg::Error);

  // gzip: a flipped byte inside the deflate data, and a stream cut short.
  Bytes pattern(3000);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>((i * 7919) % 251);
  const Bytes gz = deflate_bytes(idx_file(3, {3, 25, 40}, pattern), 31);
  Bytes corrupt = gz;
  corrupt[gz.size() / 2] ^= 0xff;
  corrupt[gz.size() / 2 + 1] ^= 0x5a;
  CHECK_THROWS_WITH_AS(read(corrupt, "corrupt.gz"), doctest::Contains("corrupt.gz: byte offset"), hg::Error);
  CHECK_THROWS_WITH_AS(read(corrupt, "corrupt.gz"), doctest::Contains("corrupt gzip data"), hg::Error);
  for (size_t cut : {size_t{5}, gz.size() / 3, gz.size() - 4}) {
    CAPTURE(cut);
    CHECK_THROWS_WITH_AS(read(Bytes(gz.begin(), gz.begin() + cut), "cut.gz"), doctest::Contains("cut.gz: byte offset"),
                         hg::Error);
  }
  CHECK_THROWS_WITH_AS(read(Bytes(gz.begin(), gz.begin() + gz.size() / 3), "cut.gz"),
                       doctest::Contains("truncated gzip stream"), hg::Error);
  // A well-formed gzip stream whose decompressed content is truncated: offsets refer to the decompressed bytes.
  const Bytes short_idx = idx_file(3, {2, 2, 2}, {1, 2, 3});
  CHECK_THROWS_WITH_AS(read(deflate_bytes(short_idx, 31), "short.gz"),
                       doctest::Contains("short.gz (decompressed): byte offset 16"), hg::Error);

  CHECK_THROWS_WITH_AS(hg::data::read_mnist_images(dir / "missing"), doctest::Contains("missing: cannot open file"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::data::load_mnist(dir.path, true), doctest::Contains("neither train-images-idx3-ubyte.gz"),
                       hg::Error);
  write_file(dir / "train-images-idx3-ubyte", good);
  write_file(dir / "train-labels-idx1-ubyte", idx_file(1, {3}, {1, 2, 3}));
  CHECK_THROWS_WITH_AS(hg::data::load_mnist(dir.path, true), doctest::Contains("has 2 images but"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::data::read_mnist_images(dir / "train-images-idx3-ubyte", hg::data::MnistOptions().std(0)),
                       doctest::Contains("std must be positive"), hg::Error);
}

TEST_CASE("data mnist: a gzip idx file is inflated only as far as its header says (gzip bombs)") {
  TempDir dir("mnist_bomb");
  // 10 labels declared, then 16 MiB of zeros: 16 KiB of gzip. Before the size check the reader must not inflate
  // more than the 18 bytes the header describes (+1 to notice the excess).
  Bytes bomb = idx_file(1, {10}, Bytes(10, 1));
  bomb.resize(bomb.size() + (16u << 20), 0);
  write_file(dir / "bomb.gz", deflate_bytes(bomb, 31));
  CHECK_THROWS_WITH_AS(hg::data::read_mnist_labels(dir / "bomb.gz"),
                       doctest::Contains("bomb.gz: the gzip data decompresses to more than 18 bytes (its idx header "
                                         "describes 18 bytes: 8 of header and 10 of data for dims 10)"),
                       hg::Error);
  // One byte too many is the same error; exactly the described size reads.
  Bytes labels = idx_file(1, {3}, {3, 0, 9});
  CHECK(hg::data::parse_idx(deflate_bytes(labels, 31), "ok.gz").data == Bytes{3, 0, 9});
  labels.push_back(0);
  CHECK_THROWS_WITH_AS(hg::data::parse_idx(deflate_bytes(labels, 31), "long.gz"),
                       doctest::Contains("long.gz: the gzip data decompresses to more than 11 bytes"), hg::Error);

  // The bounded inflation itself: a limit, a prefix, and a limit exactly met.
  const Bytes text(1000, 'a');
  const Bytes gz = deflate_bytes(text, 31);
  CHECK(hg::data::detail::gunzip(gz, "t.gz", 1000) == text);
  CHECK_THROWS_WITH_AS(hg::data::detail::gunzip(gz, "t.gz", 999, "a test limit"),
                       doctest::Contains("t.gz: the gzip data decompresses to more than 999 bytes (a test limit)"),
                       hg::Error);
  CHECK(hg::data::detail::gunzip_prefix(gz, "t.gz", 7) == Bytes(7, 'a'));
  CHECK(hg::data::detail::gunzip_prefix(gz, "t.gz", 5000) == text);
  CHECK_THROWS_WITH_AS(hg::data::detail::inflate_zlib(deflate_bytes(text, 15), "z", 0, 10),
                       doctest::Contains("z: the zlib data decompresses to more than 10 bytes"), hg::Error);
}

TEST_CASE("data mnist: the real t10k files match the data README") {
  const auto root = data_dir();
  if (!root || !fs::exists(*root / "mnist" / "t10k-images-idx3-ubyte.gz")) {
    MESSAGE("skipped: no shared data folder (set HOPGRAD_DATA_DIR to the folder holding mnist/)");
    return;
  }
  const auto test = hg::data::load_mnist(*root / "mnist", /*train=*/false);
  CHECK(test.images.sizes() == hg::Shape{10000, 1, 28, 28});
  CHECK(test.images.min().item<float>() == 0.0f);
  CHECK(test.images.max().item<float>() == 1.0f);
  const std::map<int64_t, int64_t> expected{{0, 980}, {1, 1135}, {2, 1032}, {3, 1010}, {4, 982},
                                            {5, 892}, {6, 958},  {7, 1028}, {8, 974},  {9, 1009}};
  CHECK(counts(test.labels) == expected);
  const hg::Tensor train_labels = hg::data::read_mnist_labels(*root / "mnist" / "train-labels-idx1-ubyte.gz");
  const std::map<int64_t, int64_t> expected_train{{0, 5923}, {1, 6742}, {2, 5958}, {3, 6131}, {4, 5842},
                                                  {5, 5421}, {6, 5918}, {7, 6265}, {8, 5851}, {9, 5949}};
  CHECK(counts(train_labels) == expected_train);
}

// ================================================================================================
// CIFAR-10
// ================================================================================================

namespace {
// n records; record i has label (i + 3) % 10 and pixel p of channel c equal to (i + 5c + p) % 256.
Bytes cifar_records(int n) {
  Bytes b;
  for (int i = 0; i < n; ++i) {
    b.push_back(static_cast<uint8_t>((i + 3) % 10));
    for (int c = 0; c < 3; ++c) {
      for (int p = 0; p < 1024; ++p) b.push_back(static_cast<uint8_t>((i + 5 * c + p) % 256));
    }
  }
  return b;
}
}  // namespace

TEST_CASE("data cifar10: batches, planes in [3, 32, 32] order, per-channel normalisation, train/test layout") {
  TempDir dir("cifar");
  const fs::path batches = dir / "cifar-10-batches-bin";
  write_file(batches / "test_batch.bin", cifar_records(2));
  for (int k = 1; k <= 5; ++k) write_file(batches / ("data_batch_" + std::to_string(k) + ".bin"), cifar_records(k));

  const auto test = hg::data::load_cifar10(dir.path, /*train=*/false);
  CHECK(test.images.sizes() == hg::Shape{2, 3, 32, 32});
  CHECK(test.labels.to_vector<int64_t>() == std::vector<int64_t>{3, 4});
  // image 1, channel 2, row 31, column 30 → p = 31·32 + 30 = 1022: (1 + 10 + 1022) % 256 = 9
  CHECK(test.images.select(0, 1).select(0, 2).select(0, 31).select(0, 30).item<float>() ==
        doctest::Approx(9 / 255.0).epsilon(1e-6));

  const auto opts = hg::data::Cifar10Options().mean(hg::data::kCifar10Mean).std(hg::data::kCifar10Std);
  const auto norm = hg::data::read_cifar10_batch(batches / "test_batch.bin", opts);
  for (int c = 0; c < 3; ++c) {
    const double pixel = (0 + 5 * c + 7) % 256;  // image 0, row 0, column 7
    CHECK(norm.images.select(0, 0).select(0, c).select(0, 0).select(0, 7).item<float>() ==
          doctest::Approx((pixel / 255.0 - hg::data::kCifar10Mean[c]) / hg::data::kCifar10Std[c]).epsilon(1e-6));
  }

  const auto train = hg::data::load_cifar10(dir.path, /*train=*/true);
  CHECK(train.images.size(0) == 1 + 2 + 3 + 4 + 5);
  // Batches are concatenated in order: record 0 of data_batch_3 is row 3.
  CHECK(train.labels.to_vector<int64_t>()[3] == 3);
  CHECK(train.labels.to_vector<int64_t>()[4] == 4);
  CHECK(hg::data::kCifar10Classes[3] == "cat");
}

TEST_CASE("data cifar10: broken batches") {
  TempDir dir("cifar_bad");
  auto read = [&](const Bytes& bytes) {
    write_file(dir / "batch.bin", bytes);
    return hg::data::read_cifar10_batch(dir / "batch.bin");
  };
  const Bytes two = cifar_records(2);
  CHECK_THROWS_WITH_AS(read(Bytes(two.begin(), two.end() - 1)),
                       doctest::Contains("batch.bin: byte offset 3073: a CIFAR-10 batch is a whole number of 3073-byte "
                                         "records (label + 3×32×32 pixels), but the file has 6145 bytes"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(read(Bytes(two.begin(), two.begin() + 100)), doctest::Contains("has 100 bytes"), hg::Error);
  CHECK_THROWS_WITH_AS(read(Bytes{}), doctest::Contains("has 0 bytes"), hg::Error);
  Bytes bad_label = two;
  bad_label[3073] = 10;
  CHECK_THROWS_WITH_AS(read(bad_label), doctest::Contains("byte offset 3073: record 1 has label 10, expected a class 0..9"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::data::load_cifar10(dir.path, true), doctest::Contains("data_batch_1.bin: cannot open file"),
                       hg::Error);
}

// ================================================================================================
// MAT-file v5
// ================================================================================================

namespace {

// A small MAT v5 writer for the tests: elements in the layout of the MathWorks spec.
enum : uint32_t { miINT8 = 1, miUINT8 = 2, miUINT16 = 4, miINT32 = 5, miUINT32 = 6, miDOUBLE = 9, miMATRIX = 14,
                  miCOMPRESSED = 15 };
enum : uint8_t { kCell = 1, kChar = 4, kSparse = 5, kDouble = 6 };

Bytes element(uint32_t type, const Bytes& data, bool pad = true) {
  Bytes b;
  append_le<uint32_t>(b, type);
  append_le<uint32_t>(b, static_cast<uint32_t>(data.size()));
  b.insert(b.end(), data.begin(), data.end());
  if (pad) b.resize(b.size() + (8 - data.size() % 8) % 8, 0);
  return b;
}

Bytes small_element(uint32_t type, const Bytes& data) {
  Bytes b;
  append_le<uint32_t>(b, (static_cast<uint32_t>(data.size()) << 16) | type);
  b.insert(b.end(), data.begin(), data.end());
  b.resize(8, 0);
  return b;
}

template <typename T> Bytes packed(const std::vector<T>& values) {
  Bytes b;
  for (T v : values) append_le<T>(b, v);
  return b;
}

Bytes matrix(uint8_t cls, const std::vector<int32_t>& dims, const std::string& name, const std::vector<Bytes>& data,
             uint32_t nzmax = 0, uint32_t extra_flags = 0) {
  Bytes body = element(miUINT32, packed<uint32_t>({cls | extra_flags, nzmax}));
  const Bytes d = element(miINT32, packed<int32_t>(dims));
  body.insert(body.end(), d.begin(), d.end());
  const Bytes name_bytes(name.begin(), name.end());
  const Bytes n = name.size() <= 4 ? small_element(miINT8, name_bytes) : element(miINT8, name_bytes);
  body.insert(body.end(), n.begin(), n.end());
  for (const Bytes& e : data) body.insert(body.end(), e.begin(), e.end());
  return element(miMATRIX, body);
}

Bytes mat_header(uint16_t version = 0x0100, const char* endian = "IM") {
  std::string text = "MATLAB 5.0 MAT-file, Platform: GLNX86, Created on: test";
  text.resize(124, ' ');  // 116 bytes of text, then 8 bytes of subsystem offset (spaces: none)
  // Filled in place rather than grown by push_back, which GCC 12 misreads as an overflow (-Wstringop-overflow).
  Bytes b(128);
  std::memcpy(b.data(), text.data(), 124);
  b[124] = static_cast<uint8_t>(version & 0xff);
  b[125] = static_cast<uint8_t>(version >> 8);
  b[126] = static_cast<uint8_t>(endian[0]);
  b[127] = static_cast<uint8_t>(endian[1]);
  return b;
}

Bytes mat_file(const std::vector<Bytes>& elements) {
  Bytes b = mat_header();
  for (const Bytes& e : elements) b.insert(b.end(), e.begin(), e.end());
  return b;
}

// A sparse rows×cols matrix from column-major (row, value) lists; `extra_ir` pads ir beyond nnz (nzmax > nnz).
Bytes sparse_matrix(const std::string& name, int32_t rows, const std::vector<std::vector<std::pair<int32_t, double>>>& columns,
                    int extra_ir = 0) {
  std::vector<int32_t> ir, jc{0};
  std::vector<double> pr;
  for (const auto& col : columns) {
    for (const auto& [r, v] : col) {
      ir.push_back(r);
      pr.push_back(v);
    }
    jc.push_back(static_cast<int32_t>(ir.size()));
  }
  for (int k = 0; k < extra_ir; ++k) ir.push_back(0);
  return matrix(kSparse, {rows, static_cast<int32_t>(columns.size())}, name,
                {element(miINT32, packed(ir)), element(miINT32, packed(jc)), element(miDOUBLE, packed(pr))},
                static_cast<uint32_t>(ir.size()));
}

}  // namespace

TEST_CASE("data matlab: numeric, sparse, char, compressed and unsupported variables") {
  // `a` is a 2×3 double matrix stored as miUINT8 (as the MIL files store bag ids), column-major.
  const Bytes a = matrix(kDouble, {2, 3}, "a", {element(miUINT8, {1, 4, 2, 5, 3, 6})});
  // `s` is 3×2 sparse: (0,0)=1.5, (2,0)=-2, (1,1)=7; ir carries two extra entries (nzmax 5 > nnz 3).
  const Bytes s = sparse_matrix("s", 3, {{{0, 1.5}, {2, -2.0}}, {{1, 7.0}}}, 2);
  const Bytes text = matrix(kChar, {1, 3}, "comment", {element(miUINT16, packed<uint16_t>({'h', 0xe9, '!'}))});
  const Bytes cell = matrix(kCell, {1, 1}, "c", {});
  // A double matrix inside a miCOMPRESSED element, as MATLAB's -v7 writes every variable.
  const Bytes z = element(miCOMPRESSED, deflate_bytes(matrix(kDouble, {1, 2}, "z", {element(miDOUBLE, packed<double>({0.25, -8}))}), 15),
                          /*pad=*/false);
  const Bytes bytes = mat_file({a, s, text, cell, z});
  const hg::data::MatFile mat = hg::data::parse_mat(bytes, "t.mat");

  CHECK(mat.header_text == "MATLAB 5.0 MAT-file, Platform: GLNX86, Created on: test");
  REQUIRE(mat.arrays.size() == 5);
  CHECK(mat.at("a").mat_class == hg::data::MatClass::Double);
  CHECK(mat.at("a").to_dense().to_vector<double>() == std::vector<double>{1, 2, 3, 4, 5, 6});  // row-major
  const hg::data::MatArray& sp = mat.at("s");
  CHECK(sp.is_sparse());
  CHECK(sp.nnz() == 3);
  CHECK(sp.row_indices.size() == 3);
  CHECK(sp.to_dense().to_vector<double>() == std::vector<double>{1.5, 0, 0, 7, -2, 0});
  CHECK(sp.to_dense(hg::kFloat32).dtype() == hg::kFloat32);
  CHECK(mat.at("comment").text == "h\xc3\xa9!");
  CHECK(mat.at("z").to_dense().to_vector<double>() == std::vector<double>{0.25, -8});
  CHECK(mat.contains("c"));
  CHECK_THROWS_WITH_AS(mat.at("c"), doctest::Contains("t.mat: variable 'c' could not be read: cell arrays are not supported"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(mat.at("nope"), doctest::Contains("no variable 'nope' (the file has: a, s, comment, c, z)"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(mat.at("comment").to_dense(), doctest::Contains("is a char array, expected numeric or sparse"),
                       hg::Error);
}

TEST_CASE("data matlab: broken files name the offset and what was expected") {
  const Bytes a = matrix(kDouble, {2, 2}, "abc", {element(miDOUBLE, packed<double>({1, 2, 3, 4}))});
  const Bytes good = mat_file({a});
  auto parse = [](const Bytes& b) { return hg::data::parse_mat(b, "m.mat"); };
  CHECK(parse(good).at("abc").numel() == 4);

  CHECK_THROWS_WITH_AS(parse(Bytes(good.begin(), good.begin() + 100)),
                       doctest::Contains("m.mat: byte offset 0: truncated: the 128-byte MAT-file header needs 128 bytes"),
                       hg::Error);
  Bytes v4 = good;
  v4[126] = 0;
  CHECK_THROWS_WITH_AS(parse(v4), doctest::Contains("byte offset 126: not a MAT-file level 5: expected the endian indicator 'IM'"),
                       hg::Error);
  Bytes be = good;
  be[126] = 'M';
  be[127] = 'I';
  CHECK_THROWS_WITH_AS(parse(be), doctest::Contains("big-endian MAT-files"), hg::Error);
  Bytes v73 = good;
  v73[125] = 0x02;
  v73[124] = 0x00;
  CHECK_THROWS_WITH_AS(parse(v73), doctest::Contains("byte offset 124: this is a MAT-file v7.3 (HDF5 container)"), hg::Error);

  // Cut inside a tag, inside the flags, inside the values: each is "truncated" at the right place.
  CHECK_THROWS_WITH_AS(parse(Bytes(good.begin(), good.begin() + 131)),
                       doctest::Contains("byte offset 128: truncated: the tag of a top-level data element needs 4 bytes"),
                       hg::Error);
  for (size_t cut : {size_t{140}, size_t{150}, size_t{170}, good.size() - 9}) {
    CAPTURE(cut);
    CHECK_THROWS_WITH_AS(parse(Bytes(good.begin(), good.begin() + cut)), doctest::Contains("byte offset 136: truncated"),
                         hg::Error);
  }
  // Every cut inside the element fails with an hg::Error, never garbage.
  for (size_t cut = 129; cut < good.size(); ++cut) {
    CAPTURE(cut);
    CHECK_THROWS_AS(parse(Bytes(good.begin(), good.begin() + cut)), hg::Error);
  }

  CHECK_THROWS_WITH_AS(parse(mat_file({matrix(kDouble, {2, 2}, "x", {element(miDOUBLE, packed<double>({1, 2, 3}))})})),
                       doctest::Contains("array 'x' has dims 2×2 (4 elements) but its data holds 3 values"), hg::Error);
  CHECK_THROWS_WITH_AS(parse(mat_file({element(miDOUBLE, packed<double>({1}))})),
                       doctest::Contains("byte offset 128: top-level data element of type miDOUBLE, expected miMATRIX"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(parse(mat_file({matrix(kDouble, {2, -1}, "x", {})})), doctest::Contains("dimension 1 is -1"),
                       hg::Error);
  // An empty array whose other dims are huge: refused (its 2^62 empty columns were walked by to_dense), and an
  // empty array of sane dims densifies to an empty tensor.
  const int32_t huge = std::numeric_limits<int32_t>::max();
  CHECK_THROWS_WITH_AS(parse(mat_file({matrix(kDouble, {0, huge, huge}, "e", {element(miDOUBLE, Bytes{})})})),
                       doctest::Contains("array 'e' has dims 0×2147483647×2147483647: its nonzero dims multiply to more "
                                         "than 2^48"),
                       hg::Error);
  CHECK_THROWS_AS(parse(mat_file({matrix(kDouble, {0, huge, huge, huge}, "e", {element(miDOUBLE, Bytes{})})})),
                  hg::Error);
  const hg::Tensor empty = parse(mat_file({matrix(kDouble, {0, 1000, 3}, "e", {element(miDOUBLE, Bytes{})})}))
                               .at("e")
                               .to_dense(hg::kFloat32);
  CHECK(empty.sizes() == hg::Shape{0, 3000});
  CHECK_THROWS_WITH_AS(parse(mat_file({matrix(42, {1, 1}, "x", {element(miDOUBLE, packed<double>({1}))})})),
                       doctest::Contains("array 'x' has class id 42, expected 1..15"), hg::Error);

  // Sparse arrays: nnz = jc[cols] must be covered by ir and pr, ir must be in range and increasing, jc sane.
  auto sparse = [](std::vector<int32_t> ir, std::vector<int32_t> jc, std::vector<double> pr) {
    return mat_file({matrix(kSparse, {3, static_cast<int32_t>(jc.size()) - 1}, "sp",
                            {element(miINT32, packed(ir)), element(miINT32, packed(jc)), element(miDOUBLE, packed(pr))},
                            static_cast<uint32_t>(ir.size()))});
  };
  CHECK_NOTHROW(parse(sparse({0, 2, 1}, {0, 2, 3}, {1, 2, 3})));
  CHECK_THROWS_WITH_AS(parse(sparse({0, 2}, {0, 2, 3}, {1, 2, 3})),
                       doctest::Contains("jc[2] = 3 stored values, but ir has only 2 entries"), hg::Error);
  CHECK_THROWS_WITH_AS(parse(sparse({0, 2, 1}, {0, 2, 3}, {1, 2})),
                       doctest::Contains("jc[2] = 3 stored values, but pr has only 2"), hg::Error);
  CHECK_THROWS_WITH_AS(parse(sparse({0, 3, 1}, {0, 2, 3}, {1, 2, 3})), doctest::Contains("ir[1] = 3 is outside rows 0..2"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(parse(sparse({2, 0, 1}, {0, 2, 3}, {1, 2, 3})), doctest::Contains("are not strictly increasing"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(parse(sparse({0, 2, 1}, {0, 3, 2}, {1, 2, 3})), doctest::Contains("jc decreases at column 1"),
                       hg::Error);
  const Bytes short_jc = mat_file({matrix(kSparse, {3, 2}, "sp",
                                          {element(miINT32, packed<int32_t>({0, 1, 2})), element(miINT32, packed<int32_t>({0, 3})),
                                           element(miDOUBLE, packed<double>({1, 2, 3}))},
                                          3)});
  CHECK_THROWS_WITH_AS(parse(short_jc), doctest::Contains("sparse array 'sp' is 3×2, so jc needs 3 entries, got 2"),
                       hg::Error);

  // A corrupted compressed element gives the file offset of the bad zlib byte.
  Bytes z = element(miCOMPRESSED, deflate_bytes(a, 15), false);
  z[8] ^= 0xff;  // the zlib header's first byte
  CHECK_THROWS_WITH_AS(parse(mat_file({z})), doctest::Contains("m.mat: byte offset 13"), hg::Error);
  CHECK_THROWS_WITH_AS(parse(mat_file({z})), doctest::Contains("corrupt zlib data"), hg::Error);
  // A compressed element whose content is cut: the offset is inside the decompressed stream.
  const Bytes cut_inner = element(miCOMPRESSED, deflate_bytes(Bytes(a.begin(), a.end() - 8), 15), false);
  CHECK_THROWS_WITH_AS(parse(mat_file({cut_inner})),
                       doctest::Contains("m.mat (zlib stream at byte offset 136, decompressed): byte offset 8: truncated: "
                                         "the data of a top-level data element (miMATRIX) needs 80 bytes, only 72 remain"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(hg::data::read_mat("/nonexistent/x.mat"), doctest::Contains("/nonexistent/x.mat: cannot open file"),
                       hg::Error);
}

// ================================================================================================
// MIL benchmarks
// ================================================================================================

namespace {
// 6 instances in 3 bags (ids 1, 1, 2, 2, 2, 7); bags 1 and 7 positive; features 6×2 sparse.
Bytes mil_file(const std::vector<uint8_t>& ids = {1, 1, 2, 2, 2, 7},
               const std::vector<double>& labels = {1, 1, -1, -1, -1, 1}, int32_t feature_rows = 6,
               const std::optional<Bytes>& features_override = std::nullopt) {
  const auto n = static_cast<int32_t>(ids.size());
  const Bytes bag_ids = matrix(kDouble, {1, n}, "bag_ids", {element(miUINT8, Bytes(ids.begin(), ids.end()))});
  std::vector<std::vector<std::pair<int32_t, double>>> label_columns;
  for (double l : labels) label_columns.push_back({{0, l}});
  const Bytes label_matrix = sparse_matrix("labels", 1, label_columns);
  std::vector<std::vector<std::pair<int32_t, double>>> feature_columns(2);
  for (int32_t r = 0; r < feature_rows; ++r) {
    if (r % 2 == 0) feature_columns[0].push_back({r, r + 0.5});
    feature_columns[1].push_back({r, -r});
  }
  const Bytes features =
      features_override ? *features_override : sparse_matrix("features", feature_rows, feature_columns, 1);
  const Bytes comment = matrix(kChar, {1, 2}, "comment", {element(miUINT16, packed<uint16_t>({'o', 'k'}))});
  return mat_file({bag_ids, label_matrix, features, comment});
}
}  // namespace

TEST_CASE("data mil: bags, labels and features from a MAT-file") {
  TempDir dir("mil");
  write_file(dir / "toy.mat", mil_file());
  const hg::data::MilDataset d = hg::data::read_mil_mat(dir / "toy.mat");
  CHECK(d.name == "toy");
  CHECK(d.num_bags() == 3);
  CHECK(d.num_instances() == 6);
  CHECK(d.num_features() == 2);
  CHECK(d.num_positive_bags() == 2);
  CHECK(d.bag_ids.to_vector<int64_t>() == std::vector<int64_t>{1, 2, 7});
  CHECK(d.bag_labels.to_vector<int64_t>() == std::vector<int64_t>{1, 0, 1});
  CHECK(d.instance_labels.to_vector<int64_t>() == std::vector<int64_t>{1, 1, 0, 0, 0, 1});
  CHECK(d.bag_offsets == std::vector<int64_t>{0, 2, 5, 6});
  CHECK(d.bag_size(1) == 3);
  CHECK(d.features.dtype() == hg::kFloat32);
  CHECK(d.bag(1).sizes() == hg::Shape{3, 2});
  CHECK(d.bag(1).to_vector<float>() == std::vector<float>{2.5f, -2, 0, -3, 4.5f, -4});
  CHECK(hg::data::read_mil_mat(dir / "toy.mat", hg::data::MilOptions().dtype(hg::kFloat64)).features.dtype() ==
        hg::kFloat64);
  CHECK_THROWS_WITH_AS(d.bag(3), doctest::Contains("bag 3 is out of range for 3 bags"), hg::Error);

  // The bag label is the max of its instances' labels, even when the file's instance labels differ in a bag.
  write_file(dir / "mixed.mat", mil_file({1, 1, 2, 2, 2, 7}, {-1, 1, -1, -1, -1, -1}));
  CHECK(hg::data::read_mil_mat(dir / "mixed.mat").bag_labels.to_vector<int64_t>() == std::vector<int64_t>{1, 0, 0});
}

TEST_CASE("data mil: inconsistent files") {
  auto build = [](const Bytes& b) { return hg::data::mil_from_mat(hg::data::parse_mat(b, "mil.mat")); };
  CHECK_THROWS_WITH_AS(build(mil_file({1, 2, 1, 3, 3, 3})),
                       doctest::Contains("mil.mat: the instances of bag 1 are not adjacent (rows 0 and 2"), hg::Error);
  CHECK_THROWS_WITH_AS(build(mil_file({1, 1, 0, 2, 2, 2})), doctest::Contains("bag_ids[2] is 0, expected a positive integer"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(build(mil_file({1, 1, 2, 2, 2, 2}, {1, 1, 2, -1, -1, -1})),
                       doctest::Contains("labels[2] is 2, expected -1, 0 or +1"), hg::Error);
  CHECK_THROWS_WITH_AS(build(mil_file({1, 1, 2, 2, 2, 7}, {1, 1, -1, -1, -1, 1}, 5)),
                       doctest::Contains("'features' has 5 rows (instances) but 'bag_ids' has 6 instances"), hg::Error);
  CHECK_THROWS_WITH_AS(build(mil_file({1, 1, 2, 2, 2, 7}, {1, 1, -1, -1, -1})),
                       doctest::Contains("'bag_ids' has 6 instances but 'labels' has 5"), hg::Error);
  const Bytes no_labels = mat_file({matrix(kDouble, {1, 1}, "bag_ids", {element(miUINT8, {1})})});
  CHECK_THROWS_WITH_AS(build(no_labels), doctest::Contains("no variable 'labels' (the file has: bag_ids)"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::data::load_mil("/tmp", "musk3"), doctest::Contains("unknown dataset 'musk3'"), hg::Error);
}

TEST_CASE("data mil: sizes declared by a tiny file are checked before anything that size is allocated") {
  auto build = [](const Bytes& b) { return hg::data::mil_from_mat(hg::data::parse_mat(b, "mil.mat")); };
  // A sparse 2^31−1 × 1 bag_ids storing nothing (a 300-byte file): every instance needs an id ≥ 1, so a sparse
  // bag_ids must store every entry; nothing of length 2^31−1 may be allocated.
  const auto empty_sparse = [](const std::string& name, int32_t rows, int32_t cols) {
    return matrix(kSparse, {rows, cols}, name,
                  {element(miINT32, {}), element(miUINT8, Bytes(static_cast<size_t>(cols) + 1, 0)),
                   element(miDOUBLE, {})});
  };
  const Bytes labels = matrix(kDouble, {1, 6}, "labels", {element(miUINT8, Bytes(6, 1))});
  const Bytes few_features = sparse_matrix("features", 6, {{{0, 1.0}}});
  CHECK_THROWS_WITH_AS(build(mat_file({empty_sparse("bag_ids", 2147483647, 1), labels, few_features})),
                       doctest::Contains("mil.mat: 'bag_ids' is a sparse 2147483647×1 vector storing 0 of its "
                                         "2147483647 entries; every instance needs a bag id ≥ 1"),
                       hg::Error);
  // A sparse labels vector may omit zeros, but its length must match bag_ids before it is expanded.
  const Bytes ids = matrix(kDouble, {1, 6}, "bag_ids", {element(miUINT8, {1, 1, 2, 2, 2, 7})});
  CHECK_THROWS_WITH_AS(build(mat_file({ids, empty_sparse("labels", 1, 2147483647 / 4096), few_features})),
                       doctest::Contains("mil.mat: 'bag_ids' has 6 instances but 'labels' has 524287"), hg::Error);
  // A sparse 20000 × 1000 features matrix storing nothing, in a 40 KB file: 2·10^7 dense elements exceed
  // max(2^24, 256 × file size), refused naming the file, the variable and its dims.
  const int32_t n = 20000;
  const Bytes many_ids = matrix(kDouble, {1, n}, "bag_ids", {element(miUINT8, Bytes(n, 1))});
  const Bytes many_labels = matrix(kDouble, {1, n}, "labels", {element(miUINT8, Bytes(n, 1))});
  const Bytes wide = mat_file({many_ids, many_labels, empty_sparse("features", n, 1000)});
  CHECK(hg::data::parse_mat(wide, "mil.mat").at("features").max_dense_elements == int64_t{1} << 24);
  CHECK_THROWS_WITH_AS(build(wide),
                       doctest::Contains("mil.mat: variable 'features' is a sparse 20000×1000 array with 0 stored "
                                         "values: densifying it would make 20000×1000 elements, more than the "
                                         "16777216 allowed"),
                       hg::Error);
  // The same matrix in a file 256× larger per element is fine: the bound follows the file's size.
  hg::data::MatFile big = hg::data::parse_mat(wide, "mil.mat");
  hg::data::MatArray features = big.at("features");
  features.max_dense_elements = int64_t{20000} * 1000;
  CHECK(features.to_dense(hg::kFloat32).sizes() == hg::Shape{20000, 1000});
  // A hand-made sparse array has the floor as its bound.
  hg::data::MatArray hand;
  hand.name = "x";
  hand.mat_class = hg::data::MatClass::Sparse;
  hand.dims = {5000, 5000};
  hand.column_starts.assign(5001, 0);
  CHECK_THROWS_WITH_AS(hand.to_dense(),
                       doctest::Contains("MatArray::to_dense: variable 'x' is a sparse 5000×5000 array"), hg::Error);
}

TEST_CASE("data mil: NaN, infinite or out-of-range features are refused naming the instance and the feature") {
  auto build = [](const Bytes& features, hg::DType dtype = hg::kFloat32) {
    const Bytes file = mil_file({1, 1, 2, 2, 2, 7}, {1, 1, -1, -1, -1, 1}, 6, features);
    return hg::data::mil_from_mat(hg::data::parse_mat(file, "mil.mat"), hg::data::MilOptions().dtype(dtype));
  };
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH_AS(build(sparse_matrix("features", 6, {{{0, 1.0}}, {{2, 2.0}, {3, nan}}})),
                       doctest::Contains("mil.mat: features[3, 1] (instance 3, feature 1) is nan, expected a finite "
                                         "number"),
                       hg::Error);
  std::vector<double> dense(12, 0.5);  // column-major 6 × 2: element (4, 1) is index 1·6 + 4
  dense[10] = -inf;
  CHECK_THROWS_WITH_AS(build(matrix(kDouble, {6, 2}, "features", {element(miDOUBLE, packed(dense))})),
                       doctest::Contains("features[4, 1] (instance 4, feature 1) is -inf"), hg::Error);
  // 1e300 is a finite double but would become inf as float32.
  dense[10] = 1e300;
  const Bytes huge = matrix(kDouble, {6, 2}, "features", {element(miDOUBLE, packed(dense))});
  CHECK_THROWS_WITH_AS(build(huge),
                       doctest::Contains("features[4, 1] (instance 4, feature 1) is 1e+300, expected a finite number "
                                         "within float32's range"),
                       hg::Error);
  CHECK(build(huge, hg::kFloat64).features.to_vector<double>()[4 * 2 + 1] == 1e300);
}

TEST_CASE("data mil: the real Elephant, Fox, Tiger and Musk1 files match the data README") {
  const auto root = data_dir();
  if (!root || !fs::is_directory(*root / "mil")) {
    MESSAGE("skipped: no shared data folder (set HOPGRAD_DATA_DIR to the folder holding mil/)");
    return;
  }
  struct Expected {
    const char* name;
    int64_t instances, bags, positive, dims, nnz;
  };
  for (const Expected& e : {Expected{"musk1", 476, 92, 47, 166, 79016}, Expected{"elephant", 1391, 200, 100, 230, 198913},
                            Expected{"fox", 1320, 200, 100, 230, 188760}, Expected{"tiger", 1220, 200, 100, 230, 174460}}) {
    CAPTURE(e.name);
    const hg::data::MilDataset d = hg::data::load_mil(*root / "mil", e.name);
    CHECK(d.num_instances() == e.instances);
    CHECK(d.num_bags() == e.bags);
    CHECK(d.num_positive_bags() == e.positive);
    CHECK(d.num_features() == e.dims);
    const std::string file = fs::path(e.name) == "musk1" ? "musk1norm_matlab.mat" : std::string(e.name) + "_100x100_matlab.mat";
    const hg::data::MatFile mat = hg::data::read_mat(*root / "mil" / file);
    CHECK(mat.at("features").nnz() == e.nnz);
    CHECK(mat.at("comment").text.find(e.name == std::string("musk1") ? "musk_2_svm" : "milsample") != std::string::npos);
    // Corel bag ids are 1..200 in order; every bag has at least one instance.
    if (e.bags == 200) {
      std::vector<int64_t> ids(200);
      std::iota(ids.begin(), ids.end(), 1);
      CHECK(d.bag_ids.to_vector<int64_t>() == ids);
    }
    for (int64_t b = 0; b < d.num_bags(); ++b) CHECK(d.bag_size(b) >= 1);
  }
}

// ================================================================================================
// DeepRC repertoires
// ================================================================================================

TEST_CASE("data deeprc: metadata, repertoires, filtering and targets") {
  TempDir dir("deeprc");
  write_text(dir / "metadata.tsv", "ID\tbinary_target_1\tregression\tclass\r\nrep_b.tsv\t+\t1.5\tz\r\nrep_a\t-\t-2\ta\r\n"
                                   "rep_c.tsv\t+\t3e2\tz");
  write_text(dir / "repertoires" / "rep_b.tsv", "amino_acid\ttemplates\nCASSL\t3\nCASXL\t2\n\nAC\t1\n");
  write_text(dir / "repertoires" / "nested" / "rep_a.tsv", "templates\tamino_acid\n4\tWY\n1\tcass\n2\t\n");
  write_text(dir / "repertoires" / "rep_c.tsv", "amino_acid\ttemplates\nACDEFGHIKLMNPQRSTVWY\t9");
  const hg::data::DeepRCDataset d = hg::data::load_deeprc(dir.path);
  REQUIRE(d.size() == 3);
  CHECK(d.metadata.columns == std::vector<std::string>{"ID", "binary_target_1", "regression", "class"});
  const hg::data::Repertoire& b = d.repertoires[0];
  CHECK(b.id == "rep_b.tsv");
  CHECK(b.sequences == std::vector<std::string>{"CASSL", "AC"});
  CHECK(b.counts == std::vector<int64_t>{3, 1});
  CHECK(b.filtered == 1);
  CHECK(b.max_length() == 5);
  const hg::data::Repertoire& a = d.repertoires[1];  // found in a subfolder, ".tsv" added to the ID
  CHECK(a.sequences == std::vector<std::string>{"WY"});
  CHECK(a.counts == std::vector<int64_t>{4});
  CHECK(a.filtered == 2);  // lower-case letters and an empty sequence
  CHECK(d.num_sequences() == 4);
  CHECK(d.binary_targets("binary_target_1", "+").to_vector<float>() == std::vector<float>{1, 0, 1});
  CHECK(d.regression_targets("regression").to_vector<float>() == std::vector<float>{1.5f, -2.0f, 300.0f});
  std::vector<std::string> classes;
  CHECK(d.class_targets("class", &classes).to_vector<int64_t>() == std::vector<int64_t>{1, 0, 1});
  CHECK(classes == std::vector<std::string>{"a", "z"});

  // No count column: every count is 1.
  const auto no_counts =
      hg::data::parse_repertoire("amino_acid\nCAS\n", "r.tsv", hg::data::DeepRCOptions().count_column(""));
  CHECK(no_counts.counts == std::vector<int64_t>{1});
}

TEST_CASE("data deeprc: the 20 one-hot + 3 position-feature encoding (spec E.2)") {
  hg::data::Repertoire rep;
  rep.id = "r";
  rep.sequences = {"ACD", "Y", "WAAC"};
  rep.counts = {1, 7, 2};
  const auto raw = hg::data::RepertoireEncodingOptions().normalize(false);
  const hg::Tensor x = hg::data::encode_repertoire(rep, raw);
  REQUIRE(x.sizes() == hg::Shape{3, 4, 23});
  const std::vector<float> v = x.to_vector<float>();
  auto at = [&](int s, int i, int f) { return v[(s * 4 + i) * 23 + f]; };
  auto position = [&](int s, int i) { return std::array<float, 3>{at(s, i, 20), at(s, i, 21), at(s, i, 22)}; };
  // "ACD": ℓ = 3, lin = [1, .5, 0], p = [1, 0, 1], ⌈ℓ/2⌉ = 2.
  CHECK(at(0, 0, 0) == 1.0f);  // A
  CHECK(at(0, 1, 1) == 1.0f);  // C
  CHECK(at(0, 2, 2) == 1.0f);  // D
  CHECK(position(0, 0) == std::array<float, 3>{1, 0, 0});
  CHECK(position(0, 1) == std::array<float, 3>{0, 0, 1});
  CHECK(position(0, 2) == std::array<float, 3>{0, 1, 0});
  for (int f = 0; f < 23; ++f) CHECK(at(0, 3, f) == 0.0f);  // padding
  // "Y": ℓ = 1, lin = [1], p = [1].
  CHECK(at(1, 0, 19) == 1.0f);
  CHECK(position(1, 0) == std::array<float, 3>{1, 0, 0});
  // "WAAC": ℓ = 4, lin = [1, 2/3, 1/3, 0], p = [1, 1/3, 1/3, 1], ⌈ℓ/2⌉ = 2.
  CHECK(at(2, 0, 18) == 1.0f);
  CHECK(at(2, 1, 20) == doctest::Approx(1.0 / 3));
  CHECK(at(2, 1, 22) == doctest::Approx(2.0 / 3));
  CHECK(at(2, 2, 21) == doctest::Approx(1.0 / 3));
  CHECK(at(2, 2, 20) == 0.0f);
  CHECK(position(2, 3) == std::array<float, 3>{0, 1, 0});
  // Each valid position holds one letter and position features summing to p + (1 − p) = 1: 2 per position.
  double total = 0;
  for (float f : v) total += f;
  CHECK(total == doctest::Approx(2.0 * (3 + 1 + 4)));

  // Log counts scale the one-hot part by log(max(count, 1)): count 1 → 0.
  const hg::Tensor logc = hg::data::encode_repertoire(rep, hg::data::RepertoireEncodingOptions(raw).counts(
                                                               hg::data::SequenceCountScaling::Log));
  const std::vector<float> lv = logc.to_vector<float>();
  CHECK(lv[(0 * 4 + 0) * 23 + 0] == 0.0f);
  CHECK(lv[(1 * 4 + 0) * 23 + 19] == doctest::Approx(std::log(7.0)));
  CHECK(lv[(2 * 4 + 0) * 23 + 18] == doctest::Approx(std::log(2.0)));
  CHECK(lv[(0 * 4 + 0) * 23 + 20] == 1.0f);  // position features are not scaled

  // Normalised: the whole tensor divided by its unbiased standard deviation, padded to the minibatch's length.
  const hg::Tensor normed = hg::data::encode_repertoire(rep, hg::data::RepertoireEncodingOptions().max_length(6));
  CHECK(normed.sizes() == hg::Shape{3, 6, 23});
  const std::vector<float> nv = normed.to_vector<float>();
  const double mean = std::accumulate(nv.begin(), nv.end(), 0.0) / nv.size();
  double ss = 0;
  for (float f : nv) ss += (f - mean) * (f - mean);
  CHECK(std::sqrt(ss / (nv.size() - 1)) == doctest::Approx(1.0).epsilon(1e-5));
  CHECK_THROWS_WITH_AS(hg::data::encode_repertoire(rep, hg::data::RepertoireEncodingOptions().max_length(3)),
                       doctest::Contains("max_length 3 is shorter than the repertoire's longest sequence (4)"), hg::Error);
  hg::data::Repertoire empty;
  CHECK(hg::data::encode_repertoire(empty).sizes() == hg::Shape{0, 0, 23});
}

TEST_CASE("data deeprc: broken files name the file and the line") {
  using hg::data::parse_repertoire;
  CHECK_THROWS_WITH_AS(parse_repertoire("amino_acid\ttemplates\nCAS\t3\nCAS\tmany\n", "r.tsv"),
                       doctest::Contains("r.tsv: line 3: column 'templates' is 'many', expected a non-negative integer count"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(parse_repertoire("amino_acid\ttemplates\nCAS\t-1\n", "r.tsv"), doctest::Contains("line 2"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(parse_repertoire("amino_acid\ttemplates\nCAS\t3\t1\n", "r.tsv"),
                       doctest::Contains("r.tsv: line 2: 3 tab-separated fields, expected 2"), hg::Error);
  CHECK_THROWS_WITH_AS(parse_repertoire("sequence\ttemplates\nCAS\t3\n", "r.tsv"),
                       doctest::Contains("r.tsv: line 1: no column 'amino_acid' in the header (columns: sequence, templates)"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(parse_repertoire("", "r.tsv"), doctest::Contains("r.tsv: line 1: empty file"), hg::Error);
  CHECK_THROWS_WITH_AS(parse_repertoire("a\ta\n", "r.tsv"), doctest::Contains("names column 'a' twice"), hg::Error);

  TempDir dir("deeprc_bad");
  write_text(dir / "repertoires" / "r1.tsv", "amino_acid\ttemplates\nCAS\t1\n");
  write_text(dir / "metadata.tsv", "ID\ty\nr1.tsv\t+\nr2.tsv\t-\n");
  CHECK_THROWS_WITH_AS(hg::data::load_deeprc(dir.path), doctest::Contains("metadata.tsv: line 3: no repertoire file 'r2.tsv'"),
                       hg::Error);
  write_text(dir / "metadata.tsv", "ID\ty\nr1.tsv\t+\nr1.tsv\t-\n");
  CHECK_THROWS_WITH_AS(hg::data::load_deeprc(dir.path), doctest::Contains("line 3: repertoire ID 'r1.tsv' appears twice"),
                       hg::Error);
  write_text(dir / "metadata.tsv", "ID\ty\nr1.tsv\tx\n");
  CHECK_THROWS_WITH_AS(hg::data::load_deeprc(dir.path).regression_targets("y"),
                       doctest::Contains("line 2: column 'y' is 'x', expected a number"), hg::Error);
  write_text(dir / "repertoires" / "sub" / "r1.tsv", "amino_acid\ttemplates\n");
  CHECK_THROWS_WITH_AS(hg::data::load_deeprc(dir.path), doctest::Contains("repertoire 'r1.tsv' matches 2 files"), hg::Error);
  CHECK_THROWS_WITH_AS(hg::data::load_deeprc(dir / "nothing"), doctest::Contains("metadata.tsv: cannot open file"),
                       hg::Error);
}

TEST_CASE("data deeprc: gzipped TSVs are decompressed transparently") {
  TempDir dir("deeprc_gz");
  const std::string rep = "amino_acid\ttemplates\nCASSL\t3\nCASXL\t2\nAC\t1\n";
  write_file(dir / "repertoires" / "r1.tsv.gz", deflate_bytes(Bytes(rep.begin(), rep.end()), 31));
  const hg::data::Repertoire r = hg::data::read_repertoire(dir / "repertoires" / "r1.tsv.gz");
  CHECK(r.sequences == std::vector<std::string>{"CASSL", "AC"});
  CHECK(r.counts == std::vector<int64_t>{3, 1});
  // A gzipped metadata file, and repertoire files gzipped under their plain names, load as the plain ones do.
  const std::string meta = "ID\ty\nr1.tsv.gz\t+\nr2.tsv\t-\n";
  write_file(dir / "metadata.tsv", deflate_bytes(Bytes(meta.begin(), meta.end()), 31));
  write_file(dir / "repertoires" / "r2.tsv", deflate_bytes(Bytes(rep.begin(), rep.end()), 31));
  const hg::data::DeepRCDataset d = hg::data::load_deeprc(dir.path);
  REQUIRE(d.size() == 2);
  CHECK(d.repertoires[1].sequences == std::vector<std::string>{"CASSL", "AC"});
  CHECK(d.binary_targets("y", "+").to_vector<float>() == std::vector<float>{1, 0});
  {
    // IDs without ".gz" (and without ".tsv") find their gzipped files, as they find the plain ones.
    TempDir named("deeprc_gz_ids");
    const std::string ids = "ID\ty\nr3.tsv\t+\nr4\t-\n";
    write_text(named / "metadata.tsv", ids);
    write_file(named / "repertoires" / "r3.tsv.gz", deflate_bytes(Bytes(rep.begin(), rep.end()), 31));
    write_file(named / "repertoires" / "r4.tsv.gz", deflate_bytes(Bytes(rep.begin(), rep.end()), 31));
    const hg::data::DeepRCDataset n = hg::data::load_deeprc(named.path);
    REQUIRE(n.size() == 2);
    CHECK(n.repertoires[0].id == "r3.tsv");
    CHECK(n.repertoires[1].sequences == std::vector<std::string>{"CASSL", "AC"});
  }
  // Errors after decompression give lines of the decompressed text; a corrupt stream gives the file's byte offset.
  const std::string bad = "amino_acid\ttemplates\nCAS\tmany\n";
  write_file(dir / "bad.tsv.gz", deflate_bytes(Bytes(bad.begin(), bad.end()), 31));
  CHECK_THROWS_WITH_AS(hg::data::read_repertoire(dir / "bad.tsv.gz"),
                       doctest::Contains("bad.tsv.gz: line 2: column 'templates' is 'many'"), hg::Error);
  Bytes cut = deflate_bytes(Bytes(rep.begin(), rep.end()), 31);
  cut.resize(cut.size() / 2);
  write_file(dir / "cut.tsv.gz", cut);
  CHECK_THROWS_WITH_AS(hg::data::read_tsv(dir / "cut.tsv.gz"), doctest::Contains("cut.tsv.gz: byte offset"), hg::Error);
}

TEST_CASE("data deeprc: the real example dataset matches the data README") {
  const auto root = data_dir();
  if (!root || !fs::exists(*root / "deeprc_example" / "metadata.tsv")) {
    MESSAGE("skipped: no shared data folder (set HOPGRAD_DATA_DIR to the folder holding deeprc_example/)");
    return;
  }
  const hg::data::DeepRCDataset d = hg::data::load_deeprc(*root / "deeprc_example");
  CHECK(d.size() == 100);
  CHECK(d.metadata.columns == std::vector<std::string>{"ID", "binary_target_1", "binary_target_2", "regression_target_1",
                                                       "regression_target_2", "multiclass_target_1",
                                                       "multiclass_target_2"});
  CHECK(d.binary_targets("binary_target_1", "+").sum().item<float>() == 58.0f);
  CHECK(d.binary_targets("binary_target_2", "True").sum().item<float>() == 51.0f);
  std::vector<std::string> classes;
  CHECK(counts(d.class_targets("multiclass_target_1", &classes)) == std::map<int64_t, int64_t>{{0, 25}, {1, 43}, {2, 32}});
  CHECK(classes == std::vector<std::string>{"class_a", "class_b", "class_c"});
  const hg::Tensor reg = d.regression_targets("regression_target_1");
  CHECK(reg.min().item<float>() == doctest::Approx(-4.96).epsilon(1e-2));
  CHECK(reg.max().item<float>() == doctest::Approx(497.8).epsilon(1e-3));
  CHECK(d.num_sequences() == 2806);
  int64_t min_len = 1000, max_len = 0, min_n = 1000, max_n = 0, min_count = 1000, max_count = 0, filtered = 0;
  for (const auto& r : d.repertoires) {
    min_n = std::min(min_n, r.size());
    max_n = std::max(max_n, r.size());
    filtered += r.filtered;
    for (size_t s = 0; s < r.sequences.size(); ++s) {
      min_len = std::min<int64_t>(min_len, r.sequences[s].size());
      max_len = std::max<int64_t>(max_len, r.sequences[s].size());
      min_count = std::min(min_count, r.counts[s]);
      max_count = std::max(max_count, r.counts[s]);
    }
  }
  CHECK(filtered == 0);
  CHECK(min_len == 10);
  CHECK(max_len == 19);
  CHECK(min_n == 10);
  CHECK(max_n == 49);
  CHECK(min_count == 1);
  CHECK(max_count == 9);
  CHECK(hg::data::encode_repertoire(d.repertoires[0]).size(2) == 23);
}

// ================================================================================================
// Paths that are not data files, the data folder, and scripts/fetch-data.sh
// ================================================================================================

TEST_CASE("data readers: a directory or a FIFO instead of a file is an error naming it, never a hang") {
  TempDir dir("not_a_file");
  fs::create_directories(dir / "folder");
  const fs::path folder = dir / "folder";
  const std::string not_a_file = folder.string() + ": is not a regular file (a directory)";
  for (const auto& read : std::vector<std::function<void(const fs::path&)>>{
           [](const fs::path& p) { hg::data::read_mil_mat(p); },
           [](const fs::path& p) { hg::data::read_mnist_labels(p); },
           [](const fs::path& p) { hg::data::read_tsv(p); },
           [](const fs::path& p) { hg::data::read_cifar10_batch(p); },
           [](const fs::path& p) { hg::data::read_repertoire(p); }}) {
    CHECK_THROWS_WITH_AS(read(folder), doctest::Contains(not_a_file.c_str()), hg::Error);
  }
  // Opening a FIFO for reading would block until a writer comes: refused before it is opened.
  const fs::path fifo = dir / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string fifo_error = fifo.string() + ": is not a regular file (a FIFO)";
  CHECK_THROWS_WITH_AS(hg::data::read_mat(fifo), doctest::Contains(fifo_error.c_str()), hg::Error);
  // A symlink to a regular file is read as the file.
  write_file(dir / "labels", idx_file(1, {2}, {4, 5}));
  fs::create_symlink(dir / "labels", dir / "link");
  CHECK(hg::data::read_mnist_labels(dir / "link").to_vector<int64_t>() == std::vector<int64_t>{4, 5});
}

TEST_CASE("data folder: an empty HOPGRAD_DATA_DIR counts as unset") {
  const char* saved = std::getenv("HOPGRAD_DATA_DIR");
  const std::string saved_value = saved ? saved : "";
  TempDir root("empty_env");
  fs::create_directories(root.path / "shared" / "data");
  fs::create_directories(root.path / "src");
  ::setenv("HOPGRAD_DATA_DIR", "", 1);
  // Both the folder and the permission to skip treat "" as no folder named.
  CHECK(hg::train::default_data_dir(root.path / "src") == (root.path / "shared" / "data").lexically_normal());
  hg::train::CommonFlags flags;
  CLI::App app;
  hg::train::add_common_flags(app, flags);
  app.parse(std::vector<std::string>{});
  CHECK(hg::train::may_skip_missing_data(app));
  ::setenv("HOPGRAD_DATA_DIR", "/from/env", 1);
  CHECK(hg::train::default_data_dir(root.path / "src") == "/from/env");
  CHECK_FALSE(hg::train::may_skip_missing_data(app));
  if (saved)
    ::setenv("HOPGRAD_DATA_DIR", saved_value.c_str(), 1);
  else
    ::unsetenv("HOPGRAD_DATA_DIR");
}

namespace {

// Runs `command` under bash, stdout and stderr to `log`; returns the exit status and the log's text.
std::pair<int, std::string> run_shell(const std::string& command, const fs::path& log) {
  const int status = std::system(("bash -c '" + command + "' > '" + log.string() + "' 2>&1").c_str());
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

}  // namespace

TEST_CASE("data scripts: fetch-data.sh fetches the MIL archive when any of the five files is missing") {
  if (std::system("command -v bash tar sha256sum > /dev/null 2>&1") != 0) {
    MESSAGE("skipped: bash, tar or sha256sum is not installed");
    return;
  }
  TempDir dir("fetch_mil");
  const std::string script = std::string(HG_SOURCE_DIR) + "/scripts/fetch-data.sh";
  // curl stubbed on PATH (no network here): it logs each call, then copies $ARCHIVE to the -o file, or fails
  // as curl -f does when ARCHIVE is unset.
  write_text(dir / "bin" / "curl",
             "#!/bin/bash\necho \"curl $*\" >> \"$CURL_LOG\"\nout=\n"
             "while [ $# -gt 0 ]; do case \"$1\" in -o) out=\"$2\"; shift 2;; *) shift;; esac; done\n"
             "[ -n \"${ARCHIVE:-}\" ] || exit 22\ncp \"$ARCHIVE\" \"$out\"\n");
  fs::permissions(dir / "bin" / "curl", fs::perms::owner_all);
  const std::string env = "PATH=" + (dir / "bin").string() + ":$PATH CURL_LOG=" + (dir / "curl.log").string() + " ";
  // Four of the five present (placeholders), musk2 missing, no network: the archive must be asked for, and the
  // script must fail rather than report success without musk2.
  const std::vector<std::string> four{"elephant_100x100_matlab.mat", "fox_100x100_matlab.mat",
                                      "tiger_100x100_matlab.mat", "musk1norm_matlab.mat"};
  for (const auto& f : four) write_text(dir / "dest" / "mil" / f, "placeholder");
  int rc = 0;
  std::string out;
  std::tie(rc, out) = run_shell(env + "bash " + script + " " + (dir / "dest").string() + " mil", dir / "out.log");
  CAPTURE(out);
  CHECK(rc != 0);
  CHECK(out.find("fetch  http://www.cs.columbia.edu/~andrews/mil/data/MIL-Data-2002-Musk-Corel-Trec9-MATLAB.tgz") !=
        std::string::npos);
  CHECK(out.find("error: could not download") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "dest" / "mil" / "musk2norm_matlab.mat"));
  std::tie(rc, out) = run_shell("bash " + script + " " + (dir / "dest").string() + " musk", dir / "out.log");
  CHECK(rc == 2);
  CHECK(out.find("unknown dataset 'musk'") != std::string::npos);

  // With the real four files, an archive holding musk2 completes the folder; one holding an empty musk2 is
  // "missing" at verification, not "unverified".
  const auto root = data_dir();
  if (!root || !fs::is_directory(*root / "mil")) {
    MESSAGE("rest skipped: no shared data folder (set HOPGRAD_DATA_DIR to the folder holding mil/)");
    return;
  }
  for (const auto& f : four) {
    fs::remove(dir / "dest" / "mil" / f);
    fs::create_symlink(fs::absolute(*root / "mil" / f), dir / "dest" / "mil" / f);
  }
  for (const std::string contents : {"not really musk2", ""}) {
    CAPTURE(contents);
    fs::remove(dir / "dest" / "mil" / "musk2norm_matlab.mat");
    fs::remove_all(dir / "archive");
    write_text(dir / "archive" / "MIL-Data" / "musk2norm_matlab.mat", contents);
    REQUIRE(std::system(("tar -czf '" + (dir / "mil.tgz").string() + "' -C '" + (dir / "archive").string() +
                         "' MIL-Data")
                            .c_str()) == 0);
    std::tie(rc, out) = run_shell(env + "ARCHIVE=" + (dir / "mil.tgz").string() + " bash " + script + " " +
                                      (dir / "dest").string() + " mil",
                                  dir / "out.log");
    CAPTURE(out);
    if (contents.empty()) {
      CHECK(rc == 1);
      CHECK(out.find("error: missing") != std::string::npos);
    } else {
      CHECK(rc == 0);
      CHECK(out.find("ok     mil/musk1norm_matlab.mat (sha256)") != std::string::npos);
      CHECK(out.find("unverified mil/musk2norm_matlab.mat") != std::string::npos);
    }
  }
}

// ================================================================================================
// Random corruption: a small, always-on version of the fuzz targets in tests/fuzz
// ================================================================================================

namespace {
// Runs `read` on `count` corrupted copies of `good` (1–3 bytes overwritten, a random cut, or a byte inserted):
// each must either succeed or throw hg::Error; any other exception fails the test.
template <typename F> void corrupt_and_read(const Bytes& good, int count, uint32_t seed, F&& read) {
  std::mt19937 rng(seed);
  int errors = 0;
  for (int t = 0; t < count; ++t) {
    Bytes b = good;
    switch (rng() % 3) {
      case 0:
        for (uint32_t k = 0, n = 1 + rng() % 3; k < n; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
        break;
      case 1: b.resize(rng() % b.size()); break;
      case 2: b.insert(b.begin() + rng() % b.size(), static_cast<uint8_t>(rng())); break;
    }
    try {
      read(b);
    } catch (const hg::Error&) {
      ++errors;
    } catch (const std::exception& e) {
      FAIL("trial " << t << ": " << typeid(e).name() << ": " << e.what());
    }
  }
  CHECK(errors > 0);  // the corruptions do reach the checks
}
}  // namespace

TEST_CASE("data readers: random corruptions give hg::Error or a valid result, never a crash") {
  Bytes pixels(2 * 5 * 4);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 37);
  const Bytes idx = idx_file(3, {2, 5, 4}, pixels);
  auto read_idx = [](const Bytes& b) {
    const auto a = hg::data::parse_idx(b, "fuzz");
    if (a.dims.size() == 3) hg::data::mnist_images(a);
    if (a.dims.size() == 1) hg::data::mnist_labels(a);
  };
  corrupt_and_read(idx, 400, 1, read_idx);
  corrupt_and_read(deflate_bytes(idx, 31), 400, 2, read_idx);
  corrupt_and_read(cifar_records(2), 200, 3, [](const Bytes& b) { hg::data::parse_cifar10_batch(b, "fuzz"); });
  auto read_mil = [](const Bytes& b) {
    const auto mat = hg::data::parse_mat(b, "fuzz");
    if (mat.contains("features") && mat.at("features").dims.size() == 2 &&
        mat.at("features").rows() * mat.at("features").cols() > (1 << 20)) {
      return;  // a dense size unrelated to the input's size (see tests/fuzz/fuzz_mil.cpp)
    }
    hg::data::mil_from_mat(mat);
  };
  corrupt_and_read(mil_file(), 1000, 4, read_mil);
  const Bytes compressed = mat_file({element(miCOMPRESSED, deflate_bytes(matrix(kDouble, {2, 2}, "x", {element(miDOUBLE, packed<double>({1, 2, 3, 4}))}), 15), false)});
  corrupt_and_read(compressed, 300, 5, [](const Bytes& b) {
    for (const auto& a : hg::data::parse_mat(b, "fuzz").arrays) {
      if (a.unsupported.empty() && (a.is_numeric() || a.is_sparse()) && a.numel() < (1 << 20)) a.to_dense();
    }
  });
  const std::string tsv = "amino_acid\ttemplates\nCASSLG\t3\nCAS\t12\nWYWY\t1";
  corrupt_and_read(Bytes(tsv.begin(), tsv.end()), 400, 6, [](const Bytes& b) {
    const auto rep = hg::data::parse_repertoire(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), "fuzz");
    hg::data::encode_repertoire(rep);
  });
}
