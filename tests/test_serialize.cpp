// safetensors files, atomic writes and checkpoints: byte-exact agreement with the reference implementation's
// own test vectors, files laid out by hand as Python's safetensors writes them, every kind of malformed file,
// a crash in the middle of a save (thrown, and a real process death), and a training run resumed from a
// checkpoint that continues with bit-identical losses.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "testing.h"

#include <hopgrad/nn/serialize/atomic_file.h>
#include <hopgrad/nn/serialize/checkpoint.h>
#include <hopgrad/nn/serialize/safetensors.h>

namespace fs = std::filesystem;
namespace nn = hg::nn;
namespace optim = hg::optim;
namespace ser = hg::serialize;
using hg::Tensor;
using Bytes = std::vector<uint8_t>;

namespace {

// A scratch directory removed when the test ends.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("hopgrad_serialize_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path operator/(const std::string& name) const { return path / name; }
};

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

template <typename T> void append_le(Bytes& b, T v) {
  uint8_t raw[sizeof(T)];
  std::memcpy(raw, &v, sizeof(T));
  b.insert(b.end(), raw, raw + sizeof(T));
}

// A safetensors file: the 8-byte length (the header's own by default), the header text, the data.
Bytes st_file(const std::string& header, const Bytes& data = {}, std::optional<uint64_t> length = std::nullopt) {
  Bytes b;
  append_le<uint64_t>(b, length.value_or(header.size()));
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

template <typename T> Bytes le_values(std::initializer_list<T> values) {
  Bytes b;
  for (T v : values) append_le(b, v);
  return b;
}

// True when the two tensors have the same dtype, shape and bits.
bool identical(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.sizes() != b.sizes()) return false;
  const Tensor x = a.cpu().contiguous(), y = b.cpu().contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), static_cast<size_t>(x.numel()) * x.element_size()) == 0;
}

void check_rejected(const Bytes& bytes, const std::string& message) {
  CHECK_THROWS_WITH_AS(ser::deserialize_safetensors(bytes, "bad.safetensors"),
                       doctest::Contains(("load_safetensors: bad.safetensors: " + message).c_str()), hg::Error);
}

}  // namespace

// ---- safetensors ------------------------------------------------------------------------------------------

TEST_CASE("safetensors: the bytes of the reference implementation's own test vectors") {
  // huggingface/safetensors, safetensors/src/tensor.rs: test_serialization, test_empty and
  // test_serialization_forced_alignement assert these exact bytes.
  const Tensor values = hg::arange(6.0);
  struct Case {
    ser::TensorMap tensors;
    ser::Metadata metadata;
    std::string header;  // including the space padding
    Bytes data;
  };
  const Bytes floats = le_values<float>({0, 1, 2, 3, 4, 5});
  const std::vector<Case> cases = {
      {{{"attn.0", values.reshape({1, 2, 3})}}, {},
       R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})", floats},
      {{}, {}, "{}      ", {}},
      {{}, {{"framework", "pt"}}, R"({"__metadata__":{"framework":"pt"}})" "     ", {}},
      {{{"attn0", values.reshape({1, 1, 2, 3})}}, {},
       R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})" "       ", floats},
  };
  for (const Case& c : cases) {
    INFO(c.header);
    const Bytes expected = st_file(c.header, c.data);
    CHECK(ser::serialize_safetensors(c.tensors, c.metadata) == expected);
    const ser::SafetensorsFile file = ser::deserialize_safetensors(expected);
    CHECK(file.metadata == c.metadata);
    REQUIRE(file.tensors.size() == c.tensors.size());
    for (const auto& [name, tensor] : c.tensors) CHECK(identical(file.tensors.at(name), tensor));
  }
  CHECK(st_file(cases[0].header).size() == 8 + 64);  // the reference's header length byte: 64
  CHECK(st_file(cases[3].header).size() == 8 + 72);  // 72, padded by seven spaces
}

TEST_CASE("safetensors: a file laid out by hand as Python's safetensors.torch.save_file writes it") {
  // save_file({"weight": f32 2x2, "bias": f64 [2], "index": i64 [3], "mask": bool [3], "scalar": f32 []},
  //           metadata={"format": "pt"}) orders the data by dtype alignment (I64, F64, F32, BOOL), then name.
  const std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("index":{"dtype":"I64","shape":[3],"data_offsets":[0,24]},)"
      R"("bias":{"dtype":"F64","shape":[2],"data_offsets":[24,40]},)"
      R"("scalar":{"dtype":"F32","shape":[],"data_offsets":[40,44]},)"
      R"("weight":{"dtype":"F32","shape":[2,2],"data_offsets":[44,60]},)"
      R"("mask":{"dtype":"BOOL","shape":[3],"data_offsets":[60,63]}})";
  std::string padded = header;
  padded.resize((header.size() + 7) / 8 * 8, ' ');
  Bytes data = le_values<int64_t>({7, -1, 1LL << 40});
  for (const Bytes& part : {le_values<double>({0.25, -3.5}), le_values<float>({42.0f}),
                            le_values<float>({1.0f, -2.0f, 0.5f, 1e-3f}), Bytes{1, 0, 1}})
    data.insert(data.end(), part.begin(), part.end());
  const Bytes python = st_file(padded, data);

  const ser::SafetensorsFile file = ser::deserialize_safetensors(python);
  CHECK(file.metadata == ser::Metadata{{"format", "pt"}});
  REQUIRE(file.tensors.size() == 5);
  CHECK(file.tensors.at("index").to_vector<int64_t>() == std::vector<int64_t>{7, -1, 1LL << 40});
  CHECK(file.tensors.at("bias").to_vector<double>() == std::vector<double>{0.25, -3.5});
  CHECK(file.tensors.at("scalar").dim() == 0);
  CHECK(file.tensors.at("scalar").item<float>() == 42.0f);
  CHECK(file.tensors.at("weight").sizes() == hg::Shape{2, 2});
  CHECK(file.tensors.at("weight").to_vector<float>() == std::vector<float>{1.0f, -2.0f, 0.5f, 1e-3f});
  CHECK(file.tensors.at("mask").dtype() == hg::kBool);
  CHECK(file.tensors.at("mask").to_vector<bool>() == std::vector<bool>{true, false, true});

  // Writing what was read gives Python's bytes back.
  CHECK(ser::serialize_safetensors(file.tensors, file.metadata) == python);

  // Other writers may list entries in any order and format the JSON freely: only the offsets matter.
  const std::string loose =
      "{\n  \"mask\": {\"data_offsets\": [60, 63], \"shape\": [3], \"dtype\": \"BOOL\"},\n"
      "  \"weight\": {\"shape\": [2, 2], \"dtype\": \"F32\", \"data_offsets\": [44, 60]},\n"
      "  \"bias\": {\"dtype\": \"F64\", \"shape\": [2], \"data_offsets\": [24, 40]},\n"
      "  \"scalar\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [40, 44]},\n"
      "  \"index\": {\"dtype\": \"I64\", \"shape\": [3], \"data_offsets\": [0, 24]},\n"
      "  \"__metadata__\": {\"format\": \"pt\"}\n}";
  const ser::SafetensorsFile reordered = ser::deserialize_safetensors(st_file(loose, data));
  CHECK(reordered.metadata == file.metadata);
  for (const auto& [name, tensor] : file.tensors) CHECK(identical(reordered.tensors.at(name), tensor));
}

TEST_CASE("safetensors: round trip of every dtype, strided, empty and zero-dimensional tensors") {
  TempDir dir("round_trip");
  const Tensor matrix = hgtest::uniform({3, 4}, -1, 1, 11);
  ser::TensorMap tensors = {
      {"b.f32", matrix.to(hg::kFloat32)},
      {"a.f64.transposed", matrix.transpose(0, 1)},                       // non-contiguous
      {"c.slice", matrix.slice(1, 1, 4, 2)},                               // offset and strides
      {"i64", hg::arange(-3.0, 3.0, 1.0, hg::kInt64).reshape({2, 3})},
      {"mask", matrix.to(hg::kFloat32) > 0.0},
      {"empty", hg::zeros({0, 5}, hg::kFloat64)},
      {"scalar", hg::full({}, -2.5, hg::kFloat32)},
      {"param", hgtest::uniform({2}, 0, 1, 3).requires_grad_()},           // requires grad: saved as values
      {"ünïcode name", hg::ones({1})},
  };
  const ser::Metadata metadata = {{"step", "12"}, {"note", "a \"quoted\"\nline ✓"}, {"", "empty key"}};
  const fs::path path = dir / "t.safetensors";
  ser::save_safetensors(path, tensors, metadata);
  CHECK(read_bytes(path) == ser::serialize_safetensors(tensors, metadata));
  CHECK_FALSE(fs::exists(dir / ("t.safetensors.tmp." + std::to_string(::getpid()))));

  const ser::SafetensorsFile file = ser::load_safetensors(path);
  CHECK(file.metadata == metadata);
  REQUIRE(file.tensors.size() == tensors.size());
  for (const auto& [name, tensor] : tensors) {
    INFO(name);
    const Tensor& loaded = file.tensors.at(name);
    CHECK(identical(loaded, tensor));
    CHECK(loaded.device() == hg::kCPU);
    CHECK(loaded.is_contiguous());
    CHECK_FALSE(loaded.requires_grad());
  }

  // The data is ordered as the reference orders it (I64, F64, F32, BOOL; names within a dtype), so every
  // tensor starts at a multiple of its element size: 8 + header is a multiple of 8.
  const Bytes bytes = read_bytes(path);
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  CHECK(header_length % 8 == 0);
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_length));
  const std::vector<std::string> order = {"i64", "a.f64.transposed", "c.slice", "empty", "param", "b.f32", "scalar",
                                          "ünïcode name", "mask"};
  size_t previous = 0;
  for (const std::string& name : order) {
    INFO(name);
    const size_t at = header.find("\"" + name + "\"");
    REQUIRE(at != std::string::npos);
    CHECK(at > previous);
    previous = at;
  }
  CHECK(header.find(R"("i64":{"dtype":"I64","shape":[2,3],"data_offsets":[0,48]})") != std::string::npos);
}

TEST_CASE("safetensors: malformed files name the file, the offset or tensor, and what was expected") {
  // Offsets in the messages are file offsets: the data starts at 8 + the header's length (54 for `one`).
  const std::string one = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const Bytes eight(8, 0);
  check_rejected(Bytes{1, 2, 3}, "the file is 3 bytes, too short for the 8-byte header length");
  check_rejected(st_file("{}", {}, 100'000'001), "byte offset 0: header length 100000001 exceeds the limit of 100000000");
  check_rejected(st_file("{}", {}, ~uint64_t{0}), "byte offset 0: header length 18446744073709551615 exceeds");
  check_rejected(st_file(one, {}, 1000), "byte offset 0: header length 1000 runs past the end of the file (54 bytes follow the length)");
  check_rejected(st_file(R"({"w":{"dtype":"F32",)"), "byte offset 28: the header is not valid JSON");
  check_rejected(st_file("{\"w\xff\":1}"), "byte offset 11: the header is not valid JSON");
  check_rejected(st_file(R"({"w":1e999})"), "the header is not valid JSON: [json.exception.out_of_range.406] number overflow");
  check_rejected(st_file("{\"w\":\"" + std::string(1000, 'x') + "\"}"), "tensor 'w' is \"" + std::string(71, 'x') + "… (1002 bytes), expected an object");
  check_rejected(st_file("[1, 2]"), "byte offset 8: the header is array, expected a JSON object");
  check_rejected(st_file(R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", Bytes(4, 0)),
                 "tensor 'w': unsupported dtype \"F16\" (hopgrad reads F32, F64, I64 and BOOL)");
  check_rejected(st_file(R"({"w":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", eight),
                 "tensor 'w': dtype is 7, expected a string");
  check_rejected(st_file(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", eight), "tensor 'w' has no \"shape\"");
  check_rejected(st_file(R"({"w":[0,8]})", eight), "tensor 'w' is [0,8], expected an object");
  check_rejected(st_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight),
                 "tensor 'w' shape entry is -2, expected a non-negative integer");
  check_rejected(st_file(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", eight),
                 "tensor 'w' shape entry is 2.0, expected a non-negative integer");
  check_rejected(st_file(R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", Bytes(4, 0)),
                 "tensor 'w': shape [1,1,1,1,1,1,1,1,1] has 9 dimensions, hopgrad tensors have at most 8");
  check_rejected(st_file(R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}})"),
                 "tensor 'w': shape [4294967296,4294967296] has more elements than any file can hold");
  // A size beyond int64 after a 0 (the element count stays 0) is refused on its own.
  check_rejected(st_file(R"({"w":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}})"),
                 "tensor 'w': shape [0,18446744073709551615] has a size (18446744073709551615) above what a tensor");
  check_rejected(st_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight),
                 "tensor 'w': shape [3] of F32 needs 12 bytes, data_offsets [0, 8] hold 8");
  check_rejected(st_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight),
                 "tensor 'w': data_offsets [8, 0] end before they begin");
  check_rejected(st_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", eight),
                 "tensor 'w': data_offsets is [0], expected [begin, end]");
  check_rejected(st_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", eight),
                 "tensor 'w': data_offsets [8, 16] run past the end of the data, which holds 8 bytes (file byte "
                 "offsets 63 to 71)");
  check_rejected(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", Bytes(12, 0)),
                 "byte offset 120: a gap of 4 bytes before tensor 'b' (data_offsets [8, 12]); tensors must be packed");
  check_rejected(st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
                 "byte offset 119: tensor 'b' (data_offsets [4, 8]) overlaps tensor 'a' (data_offsets [0, 8])");
  check_rejected(st_file(one, Bytes(11, 0)), "byte offset 70: 3 trailing bytes after the last tensor");
  check_rejected(st_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
                 "duplicate key 'w' in the header");
  check_rejected(st_file(R"({"__metadata__":{"k":"1","k":"2"}})"), "duplicate key 'k' in the header");
  // 100 000 nested brackets: refused while parsing (the error message's dump of the value overflowed the stack).
  check_rejected(st_file("{\"__metadata__\":" + std::string(100000, '[') + std::string(100000, ']') + "}"),
                 "the header nests deeper than 64 levels");
  // A NUL ended the parser's input: what followed it was ignored.
  check_rejected(st_file(std::string("{}\0{\"x\":1}", 10)), "byte offset 10: a NUL byte in the header");
  check_rejected(st_file(R"({"__metadata__":{"step":12}})"), "\"__metadata__\" entry 'step' is 12, expected a string");
  check_rejected(st_file(R"({"__metadata__":"pt"})"), "\"__metadata__\" is \"pt\", expected an object of strings");
  check_rejected(st_file(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})", Bytes{1, 0, 2}),
                 "byte offset 65: tensor 'm' holds BOOL value 2, expected 0 or 1");

  // The file name leads every message from load_safetensors.
  TempDir dir("malformed");
  write_bytes(dir / "gap.safetensors", st_file(one, Bytes(9, 0)));
  CHECK_THROWS_WITH_AS(ser::load_safetensors(dir / "gap.safetensors"),
                       doctest::Contains(((dir / "gap.safetensors").string() + ": byte offset 70: 1 trailing bytes").c_str()),
                       hg::Error);
  CHECK_THROWS_WITH_AS(ser::load_safetensors(dir / "missing.safetensors"),
                       doctest::Contains("missing.safetensors: cannot open the file"), hg::Error);
  CHECK_THROWS_WITH_AS(ser::load_safetensors(dir.path),
                       doctest::Contains(": is a directory, expected a checkpoint file"), hg::Error);
}

TEST_CASE("safetensors: random corruptions of a valid file end in hg::Error or a valid result") {
  const Bytes good = ser::serialize_safetensors(
      {{"a", hgtest::uniform({2, 3}).to(hg::kFloat32)}, {"b", hg::arange(4.0, hg::kInt64)},
       {"m", hg::ones({3}) > 0.5}},
      {{"k", "v"}});
  std::mt19937 rng(5);
  int rejected = 0, accepted = 0;
  for (int trial = 0; trial < 400; ++trial) {
    Bytes bad = good;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) bad[rng() % bad.size()] = static_cast<uint8_t>(rng());
    if (trial % 5 == 0) bad.resize(rng() % bad.size());  // truncations too
    try {
      const ser::SafetensorsFile file = ser::deserialize_safetensors(bad);
      for (const auto& [name, tensor] : file.tensors) CHECK(tensor.numel() * int64_t(tensor.element_size()) <= int64_t(bad.size()));
      ++accepted;
    } catch (const hg::Error&) {
      ++rejected;
    }
  }
  CHECK(rejected > 100);
  CHECK(accepted > 10);  // flips inside the float data stay valid files
}

TEST_CASE("save_safetensors: bad arguments are refused before anything is written") {
  TempDir dir("bad_save");
  const fs::path path = dir / "x.safetensors";
  CHECK_THROWS_WITH_AS(ser::save_safetensors(path, {{"w", Tensor()}}), doctest::Contains("tensor 'w' is undefined"),
                       hg::Error);
  CHECK_THROWS_WITH_AS(ser::save_safetensors(path, {{"__metadata__", hg::ones({1})}}),
                       doctest::Contains("'__metadata__' is reserved for the metadata"), hg::Error);
  CHECK_THROWS_WITH_AS(ser::save_safetensors(path, {{"w\xc3(", hg::ones({1})}}),
                       doctest::Contains("is not valid UTF-8"), hg::Error);
  CHECK_THROWS_WITH_AS(ser::save_safetensors(path, {}, {{"k", "\xed\xa0\x80"}}),  // a UTF-16 surrogate
                       doctest::Contains("metadata 'k' is not valid UTF-8"), hg::Error);
  CHECK_FALSE(fs::exists(path));
  CHECK_THROWS_WITH_AS(ser::save_safetensors(dir / "no_such_dir" / "x.safetensors", {}),
                       doctest::Contains("cannot create"), hg::Error);
  CHECK(fs::is_empty(dir.path));
}

// CUDA tensors are copied to the host on save; loaded tensors come back on the CPU.
HG_BACKEND_TEST(safetensors_device_round_trip) {
  TempDir dir("device");
  const Tensor x = hgtest::uniform({4, 3}, -1, 1, 21).to(device);
  const ser::TensorMap tensors = {{"x", x}, {"xt", x.to(hg::kFloat32).transpose(0, 1)}, {"mask", x > 0.0},
                                  {"i", hg::arange(5.0, hg::kInt64).to(device)}};
  ser::save_safetensors(dir / "d.safetensors", tensors);
  const ser::SafetensorsFile file = ser::load_safetensors(dir / "d.safetensors");
  for (const auto& [name, tensor] : tensors) {
    CHECK(file.tensors.at(name).device() == hg::kCPU);
    CHECK(identical(file.tensors.at(name), tensor));
  }
  CHECK(file.tensors.at("xt").to_vector<float>()[1] == static_cast<float>(x.cpu().to_vector<double>()[3]));
  return {file.tensors.at("x").to(device), file.tensors.at("xt").to(device), file.tensors.at("i").to(device)};
}

// ---- atomic writes ----------------------------------------------------------------------------------------

TEST_CASE("AtomicFile: replaces the target on commit, discards without it, refuses a second writer") {
  TempDir dir("atomic");
  const fs::path path = dir / "f.bin";
  write_bytes(path, Bytes{9, 9});
  {
    ser::AtomicFile file(path);
    CHECK(file.temp_path() == fs::path(path.string() + ".tmp." + std::to_string(::getpid())));
    file.write("abc", 3);
    CHECK(fs::exists(file.temp_path()));
    CHECK(read_bytes(path) == Bytes{9, 9});  // untouched until commit
    CHECK_THROWS_WITH_AS(ser::AtomicFile{path}, doctest::Contains("is already being written by this process"),
                         hg::Error);
    // Another spelling of the same path is the same file (they would share the temporary file).
    CHECK_THROWS_WITH_AS(ser::AtomicFile{dir / "." / "sub" / ".." / "f.bin"},
                         doctest::Contains("is already being written by this process"), hg::Error);
    file.write("de", 2);
    CHECK(file.bytes_written() == 5);
    file.commit();
    CHECK_FALSE(fs::exists(file.temp_path()));
    CHECK_THROWS_WITH_AS(file.write("x", 1), doctest::Contains("after commit()"), hg::Error);
  }
  CHECK(read_bytes(path) == Bytes{'a', 'b', 'c', 'd', 'e'});
  {
    ser::AtomicFile file(path);  // the path is free again
    file.write("zz", 2);
  }  // no commit: the temporary file goes, the target stays
  CHECK(read_bytes(path) == Bytes{'a', 'b', 'c', 'd', 'e'});
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
  fs::create_directories(dir / "a_directory");
  ser::AtomicFile onto_directory(dir / "a_directory");
  CHECK_THROWS_WITH_AS(onto_directory.commit(), doctest::Contains("renaming"), hg::Error);
}

namespace {

// A small model whose forward uses the generator (dropout) and a buffer.
struct TinyNetImpl : nn::Module {
  explicit TinyNetImpl(int64_t hidden = 8) {
    fc1 = register_module("fc1", nn::Linear(4, hidden));
    drop = register_module("drop", nn::Dropout(0.25));
    fc2 = register_module("fc2", nn::Linear(hidden, 3));
    scale = register_buffer("scale", hg::full({3}, 0.5));
  }
  Tensor forward(const Tensor& x) { return fc2(drop(fc1(x).relu())) * scale; }
  nn::Linear fc1{nullptr}, fc2{nullptr};
  nn::Dropout drop{nullptr};
  Tensor scale;
};
HG_MODULE(TinyNet);

// The model, its optimizer and scheduler, built from the default generator's current state.
struct Run {
  TinyNet net;
  std::unique_ptr<optim::Optimizer> optimizer;
  std::unique_ptr<optim::LRScheduler> schedule;

  explicit Run(bool adam) : net() {
    if (adam) {
      optimizer = std::make_unique<optim::Adam>(net->parameters(), optim::AdamOptions(0.05).eps(1e-4));
      schedule = std::make_unique<optim::CosineAnnealingLR>(*optimizer, 6);
    } else {
      optimizer = std::make_unique<optim::SGD>(net->parameters(), optim::SGDOptions(0.2).momentum(0.9).nesterov(true));
      schedule = std::make_unique<optim::StepLR>(*optimizer, 2, 0.5);
    }
  }

  // One step on a batch of 8 drawn from a fixed data set with the default generator; returns the loss.
  float step() {
    static const Tensor x = hgtest::uniform({32, 4}, -2, 2, 99).to(hg::kFloat32);
    static hg::Generator labels(7);
    static const Tensor y = hg::randint(0, 3, {32}, hg::kInt64, &labels);
    const Tensor batch = hg::randint(0, 32, {8});
    optimizer->zero_grad();
    const Tensor loss = hg::cross_entropy(net(hg::index_select(x, 0, batch)), hg::index_select(y, 0, batch));
    loss.backward();
    optimizer->step();
    schedule->step();
    return loss.item<float>();
  }
};

}  // namespace

TEST_CASE("AtomicFile: a commit removes the temporary files that killed writers left behind") {
  const fs::path dir = fs::temp_directory_path() / fmt::format("hg_atomic_leftover_{}", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path target = dir / "run.ckpt";
  // A pid that no process has (above the kernel's pid_max), one that is alive (this process's parent), and a
  // file that only looks similar.
  for (const char* name : {"run.ckpt.tmp.999999999", "run.ckpt.tmp.x1", "other.ckpt.tmp.999999999"})
    std::ofstream(dir / name) << "partial";
  const fs::path alive = dir / fmt::format("run.ckpt.tmp.{}", ::getppid());
  std::ofstream(alive) << "being written";
  {
    hg::serialize::AtomicFile out(target);
    out.write("new", 3);
    out.commit();
  }
  CHECK(fs::exists(target));
  CHECK_FALSE(fs::exists(dir / "run.ckpt.tmp.999999999"));  // its writer is gone
  CHECK(fs::exists(alive));                                  // its writer may still be at work
  CHECK(fs::exists(dir / "run.ckpt.tmp.x1"));                // not a pid
  CHECK(fs::exists(dir / "other.ckpt.tmp.999999999"));      // another file's
  fs::remove_all(dir);
}

TEST_CASE("AtomicFile: a crash mid-save leaves the previous checkpoint intact and loadable") {
  TempDir dir("crash");
  const fs::path path = dir / "ckpt.safetensors";
  hg::manual_seed(3);
  Run run(/*adam=*/true);
  for (int i = 0; i < 2; ++i) run.step();
  ser::TrainingState at_step_2;
  at_step_2.step = 2;
  ser::save(path, *run.net, run.optimizer.get(), at_step_2);
  const Bytes previous = read_bytes(path);
  for (int i = 0; i < 2; ++i) run.step();  // the model moves on; the next save dies half-way
  auto die_half_way = [&](auto&& die) {
    return [&, die](const fs::path&, uint64_t written, size_t) {
      if (written >= previous.size() / 2) die();
    };
  };

  SUBCASE("an exception half-way: the temporary file is removed") {
    {
      ser::detail::ScopedWriteHook hook(die_half_way([] { throw std::runtime_error("simulated crash"); }));
      CHECK_THROWS_WITH_AS(ser::save(path, *run.net, run.optimizer.get(), {}), "simulated crash",
                           std::runtime_error);
    }
    CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
  }
  SUBCASE("the process dies half-way: only a stray temporary file is left") {
    const int child = hgtest::run_in_child_expecting_exit([&] {  // the child only saves, and dies in the hook
      ser::detail::ScopedWriteHook hook(die_half_way([] { ::_exit(42); }));
      ser::save(path, *run.net, run.optimizer.get(), {});
    });
    const fs::path stray = path.string() + ".tmp." + std::to_string(child);
    REQUIRE(fs::exists(stray));
    CHECK(fs::file_size(stray) >= previous.size() / 2);
    CHECK_THROWS_AS(ser::load_safetensors(stray), hg::Error);  // the half-written file is not a valid one
  }
  CHECK(read_bytes(path) == previous);
  hg::manual_seed(4);
  Run fresh(/*adam=*/true);
  const ser::TrainingState state = ser::load(path, *fresh.net, fresh.optimizer.get());
  CHECK(state.step == 2);
}

// ---- checkpoints ------------------------------------------------------------------------------------------

TEST_CASE("checkpoint: a resumed run continues with bit-identical losses (SGD+StepLR, Adam+cosine)") {
  TempDir dir("resume");
  for (bool adam : {false, true}) {
    INFO((adam ? "Adam" : "SGD"));
    constexpr int kSteps = 7, kSaveAt = 3;
    const std::string config = R"({"lr":0.05,"hidden":8,"note":"resume test"})";

    hg::manual_seed(10);
    Run uninterrupted(adam);
    std::vector<float> expected;
    for (int i = 0; i < kSteps; ++i) expected.push_back(uninterrupted.step());

    hg::manual_seed(10);
    std::vector<float> losses;
    {
      Run first(adam);
      for (int i = 0; i < kSaveAt; ++i) losses.push_back(first.step());
      ser::TrainingState state;
      state.step = kSaveAt;
      state.epoch = 1;
      state.config = config;
      state.rng = ser::RngState::capture();
      state.scheduler = first.schedule->state();
      ser::save(dir / "run.safetensors", *first.net, first.optimizer.get(), state);
      for (int i = 0; i < 2; ++i) first.step();  // the first run goes on a little and is then lost
    }
    hg::manual_seed(12345);  // fresh objects start from other weights and another generator state
    Run resumed(adam);
    CHECK_FALSE(identical(resumed.net->fc1->weight, uninterrupted.net->fc1->weight));
    const ser::TrainingState state = ser::load(dir / "run.safetensors", *resumed.net, resumed.optimizer.get());
    CHECK(state.step == kSaveAt);
    CHECK(state.epoch == 1);
    CHECK(state.config == config);
    REQUIRE(state.scheduler.has_value());
    state.rng.restore();
    resumed.schedule->load_state(*state.scheduler);
    for (int i = kSaveAt; i < kSteps; ++i) losses.push_back(resumed.step());

    REQUIRE(losses.size() == expected.size());
    for (size_t i = 0; i < losses.size(); ++i) {
      INFO("step " << i);
      CHECK(std::memcmp(&losses[i], &expected[i], sizeof(float)) == 0);
    }
    const auto expected_params = uninterrupted.net->parameters(), params = resumed.net->parameters();
    for (size_t i = 0; i < params.size(); ++i) CHECK(identical(params[i], expected_params[i]));
    CHECK(resumed.optimizer->lr(0) == uninterrupted.optimizer->lr(0));
  }
}

TEST_CASE("checkpoint: what the file holds, and a model-only load") {
  TempDir dir("layout");
  hg::manual_seed(1);
  Run run(/*adam=*/true);
  run.step();
  ser::TrainingState saved;
  saved.step = 1;
  saved.rng = {7, 1ull << 63, {}};
  saved.scheduler = run.schedule->state();
  ser::save(dir / "c.safetensors", *run.net, run.optimizer.get(), saved);
  const ser::SafetensorsFile file = ser::load_safetensors(dir / "c.safetensors");
  for (const char* key : {"model.fc1.weight", "model.fc1.bias", "model.fc2.weight", "model.fc2.bias", "model.scale",
                          "optim.state.0.exp_avg", "optim.state.3.exp_avg_sq"})
    CHECK_MESSAGE(file.tensors.count(key) == 1, key);
  CHECK(file.tensors.size() == 5 + 4 * 2);
  CHECK(file.metadata.at("format") == "hopgrad.checkpoint");
  CHECK(file.metadata.at("optimizer") == "Adam");
  CHECK(file.metadata.at("optim.param_groups.0.eps") == "0.0001");
  CHECK(file.metadata.at("optim.state.0.step") == "1");
  CHECK(file.metadata.at("rng.offset") == "9223372036854775808");
  CHECK(file.metadata.at("scheduler.last_epoch") == "1");
  CHECK(file.metadata.at("config") == "{}");

  // A null optimizer loads the model alone (the optimizer keys are not needed then).
  hg::manual_seed(2);
  TinyNet net;
  const ser::TrainingState state = ser::load(dir / "c.safetensors", *net, nullptr);
  CHECK(state.rng.seed == 7);
  CHECK(state.rng.offset == 1ull << 63);
  for (const auto& [name, tensor] : file.tensors)
    if (name.starts_with("model.")) {
      bool found = false;
      for (const auto& [n, p] : net->named_parameters()) found |= "model." + n == name && identical(p, tensor);
      for (const auto& [n, b] : net->named_buffers()) found |= "model." + n == name && identical(b, tensor);
      CHECK_MESSAGE(found, name);
    }
  // The parameters are still the module's leaves (loaded in place, not replaced).
  CHECK(net->fc1->weight.is_same(net->named_parameters()[0].second));
  CHECK(net->fc1->weight.requires_grad());

  // A float64 checkpoint loads into a float32 model converted, as torch's load_state_dict copies.
  TinyNet wide;
  wide->to(hg::kFloat64);
  wide->fc2->bias.detach().fill_(0.1);
  ser::save(dir / "f64.safetensors", *wide, nullptr, {});
  ser::load(dir / "f64.safetensors", *net, nullptr);
  CHECK(net->fc2->bias.dtype() == hg::kFloat32);
  CHECK(net->fc2->bias.to_vector<float>() == std::vector<float>(3, 0.1f));
  CHECK(identical(net->fc1->weight, wide->fc1->weight.to(hg::kFloat32)));
}

TEST_CASE("checkpoint: load names the first mismatch and changes nothing") {
  TempDir dir("mismatch");
  const fs::path path = dir / "c.safetensors";
  hg::manual_seed(1);
  Run saved(/*adam=*/false);
  saved.step();
  ser::save(path, *saved.net, saved.optimizer.get(), {});

  hg::manual_seed(2);
  auto unchanged = [](Run& run, auto&& attempt, const std::string& message) {
    std::vector<Tensor> before;
    for (const Tensor& p : run.net->parameters()) before.push_back(p.clone());
    const auto optimizer_before = run.optimizer->state_dict();
    CHECK_THROWS_WITH_AS(attempt(), doctest::Contains(message.c_str()), hg::Error);
    const auto params = run.net->parameters();
    for (size_t i = 0; i < params.size(); ++i) CHECK(identical(params[i], before[i]));
    CHECK(run.optimizer->state_dict().tensors.size() == optimizer_before.tensors.size());
  };

  Run wider(/*adam=*/false);
  wider.net->register_parameter("extra", hg::zeros({2}));
  unchanged(wider, [&] { ser::load(path, *wider.net, wider.optimizer.get()); },
            "load: " + path.string() + ": missing key 'model.extra' (the module's parameter 'extra' is not in the "
            "checkpoint)");

  Run narrower(/*adam=*/false);
  auto small = std::make_shared<nn::Module>();
  small->register_module("fc1", narrower.net->fc1);
  small->register_module("fc2", narrower.net->fc2);
  CHECK_THROWS_WITH_AS(ser::load(path, *small, nullptr),
                       doctest::Contains("unexpected key 'model.scale' (the module has no parameter or buffer"),
                       hg::Error);

  hg::manual_seed(3);
  TinyNet other_hidden(5);
  CHECK_THROWS_WITH_AS(ser::load(path, *other_hidden, nullptr),
                       doctest::Contains("shape mismatch for 'model.fc1.weight': the checkpoint has [8, 4], the "
                                         "module's parameter is [5, 4]"),
                       hg::Error);

  Run adam(/*adam=*/true);
  unchanged(adam, [&] { ser::load(path, *adam.net, adam.optimizer.get()); },
            "optimizer state (keys optim.<key>): Adam.load_state_dict: the state is from a SGD optimizer, expected Adam");

  ser::save(dir / "model_only.safetensors", *saved.net, nullptr, {});
  Run sgd(/*adam=*/false);
  unchanged(sgd, [&] { ser::load(dir / "model_only.safetensors", *sgd.net, sgd.optimizer.get()); },
            "the checkpoint has no optimizer state");

  ser::save_safetensors(dir / "plain.safetensors", {{"model.scale", hg::ones({3})}});
  unchanged(sgd, [&] { ser::load(dir / "plain.safetensors", *sgd.net, nullptr); },
            "not a hopgrad checkpoint (metadata 'format' is missing, expected 'hopgrad.checkpoint')");

  ser::SafetensorsFile tampered = ser::load_safetensors(path);
  tampered.metadata["step"] = "12x";
  ser::save_safetensors(dir / "tampered.safetensors", tampered.tensors, tampered.metadata);
  unchanged(sgd, [&] { ser::load(dir / "tampered.safetensors", *sgd.net, sgd.optimizer.get()); },
            "metadata 'step' is '12x', expected an integer");
  tampered = ser::load_safetensors(path);
  tampered.tensors["stray"] = hg::ones({1});
  ser::save_safetensors(dir / "stray.safetensors", tampered.tensors, tampered.metadata);
  unchanged(sgd, [&] { ser::load(dir / "stray.safetensors", *sgd.net, sgd.optimizer.get()); },
            "unexpected key 'stray' (checkpoint tensors are named model.<name> or optim.<key>)");

  ser::TrainingState bad_config;
  bad_config.config = "{lr: 1}";
  CHECK_THROWS_WITH_AS(ser::save(dir / "bad_config.safetensors", *sgd.net, nullptr, bad_config),
                       doctest::Contains("the config is not valid JSON"), hg::Error);
  CHECK_FALSE(fs::exists(dir / "bad_config.safetensors"));
}

TEST_CASE("checkpoint: the CUDA generators' states are saved and restored; older checkpoints still load") {
  TempDir dir("cuda_rng");
  const fs::path path = dir / "c.safetensors";
  hg::manual_seed(1);
  Run run(/*adam=*/false);
  run.step();
  // The generator objects exist without a GPU, so the whole round trip runs on the CPU too.
  ser::TrainingState saved;
  saved.rng = {7, 3, {{0, {11, 256}}, {2, {13, 1ull << 63}}}};
  ser::save(path, *run.net, run.optimizer.get(), saved);
  const ser::SafetensorsFile file = ser::load_safetensors(path);
  CHECK(file.metadata.at("rng.cuda.0.seed") == "11");
  CHECK(file.metadata.at("rng.cuda.0.offset") == "256");
  CHECK(file.metadata.at("rng.cuda.2.seed") == "13");
  CHECK(file.metadata.at("rng.cuda.2.offset") == "9223372036854775808");
  CHECK(file.metadata.count("rng.cuda.1.seed") == 0);

  hg::default_generator(hg::Device::cuda(1)).set_state(5, 55);
  const ser::TrainingState state = ser::load(path, *run.net, run.optimizer.get());
  CHECK(state.rng.seed == 7);
  CHECK(state.rng.offset == 3);
  CHECK(state.rng.cuda == saved.rng.cuda);
  state.rng.restore();
  auto generator_state = [](hg::Device device) {
    const hg::Generator& g = hg::default_generator(device);
    return ser::GeneratorState{g.seed(), g.offset()};
  };
  CHECK(generator_state(hg::kCPU) == ser::GeneratorState{7, 3});
  CHECK(generator_state(hg::Device::cuda(0)) == ser::GeneratorState{11, 256});
  CHECK(generator_state(hg::Device::cuda(2)) == ser::GeneratorState{13, 1ull << 63});
  CHECK(generator_state(hg::Device::cuda(1)) == ser::GeneratorState{5, 55});  // not in the checkpoint: untouched

  // capture() records every device of this machine (none without a GPU); capture(generator) that one alone.
  const ser::RngState captured = ser::RngState::capture();
  CHECK(captured.cuda.size() == static_cast<size_t>(hg::cuda_device_count()));
  for (const auto& [index, g] : captured.cuda) CHECK(g == generator_state(hg::Device::cuda(index)));
  CHECK(ser::RngState::capture(hg::default_generator()).cuda.empty());

  // A checkpoint written before the CUDA keys existed loads, and its restore leaves the CUDA generators alone.
  ser::SafetensorsFile older = file;
  for (const char* key : {"rng.cuda.0.seed", "rng.cuda.0.offset", "rng.cuda.2.seed", "rng.cuda.2.offset"})
    older.metadata.erase(key);
  ser::save_safetensors(dir / "older.safetensors", older.tensors, older.metadata);
  const ser::TrainingState old_state = ser::load(dir / "older.safetensors", *run.net, run.optimizer.get());
  CHECK(old_state.rng.cuda.empty());
  old_state.rng.restore();
  CHECK(generator_state(hg::kCPU) == ser::GeneratorState{7, 3});
  CHECK(generator_state(hg::Device::cuda(0)) == ser::GeneratorState{11, 256});

  // Malformed CUDA keys name the key and what was expected.
  auto refused = [&](std::map<std::string, std::string> changes, std::vector<std::string> removed,
                     const std::string& message) {
    ser::SafetensorsFile bad = file;
    for (const auto& key : removed) bad.metadata.erase(key);
    for (auto& [key, value] : changes) bad.metadata[key] = value;
    ser::save_safetensors(dir / "bad.safetensors", bad.tensors, bad.metadata);
    CHECK_THROWS_WITH_AS(ser::load(dir / "bad.safetensors", *run.net, nullptr), doctest::Contains(message.c_str()),
                         hg::Error);
  };
  refused({}, {"rng.cuda.2.offset"}, "missing metadata 'rng.cuda.2.offset' (a CUDA generator's state is a seed and");
  refused({{"rng.cuda.0.offset", "-1"}}, {}, "metadata 'rng.cuda.0.offset' is '-1', expected a non-negative integer");
  refused({{"rng.cuda.0.state", "1"}}, {}, "unexpected metadata 'rng.cuda.0.state' (expected rng.cuda.<device index>");
  refused({{"rng.cuda.x.seed", "1"}, {"rng.cuda.x.offset", "1"}}, {}, "'rng.cuda.x.offset (its device index)' is 'x'");
  refused({{"rng.cuda.99.seed", "1"}, {"rng.cuda.99.offset", "1"}}, {}, "metadata 'rng.cuda.99.offset': ");
  hg::manual_seed(0);  // the other tests' generators as a fresh process has them
}

// On a GPU: the random numbers drawn on the device after a resume are the uninterrupted run's.
TEST_CASE("checkpoint: CUDA random numbers continue after a resume" * doctest::skip(hg::cuda_device_count() == 0)) {
  TempDir dir("cuda_rng_draws");
  const hg::Device cuda = hg::Device::cuda(0);
  hg::manual_seed(21);
  TinyNet net;
  (void)hg::randn({17}, hg::TensorOptions().device(cuda));  // the generator has moved on before the save
  ser::TrainingState state;
  state.rng = ser::RngState::capture();
  ser::save(dir / "c.safetensors", *net, nullptr, state);
  const Tensor expected = hg::rand({33}, hg::TensorOptions().device(cuda));
  hg::manual_seed(22);
  (void)hg::randn({5}, hg::TensorOptions().device(cuda));
  ser::load(dir / "c.safetensors", *net, nullptr).rng.restore();
  CHECK(identical(hg::rand({33}, hg::TensorOptions().device(cuda)), expected));
  hg::manual_seed(0);
}

// A model on the device saves to the host and loads back into a model on the device.
HG_BACKEND_TEST(checkpoint_device_round_trip) {
  TempDir dir("checkpoint_device");
  hg::manual_seed(5);
  TinyNet source;
  source->to(device);
  source->eval();  // no dropout: the CPU's and the GPU's generators draw different masks
  optim::Adam adam(source->parameters(), optim::AdamOptions(0.01));
  const Tensor x = hgtest::uniform({6, 4}, -1, 1, 8).to(hg::kFloat32).to(device);
  hg::mse_loss(source(x), hg::zeros({6, 3}).to(device)).backward();
  adam.step();
  ser::save(dir / "c.safetensors", *source, &adam, {});

  hg::manual_seed(6);
  TinyNet target;
  target->to(device);
  optim::Adam restored(target->parameters(), optim::AdamOptions(0.5));
  ser::load(dir / "c.safetensors", *target, &restored);
  CHECK(target->fc2->weight.device() == device);
  CHECK(identical(target->fc2->weight, source->fc2->weight));
  CHECK(identical(restored.state_dict().tensors.at("state.2.exp_avg"), adam.state_dict().tensors.at("state.2.exp_avg")));
  CHECK(restored.lr(0) == 0.01);
  target->eval();
  return {target->fc1->weight, target(x)};
}
