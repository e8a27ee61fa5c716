// tests/test_safetensors.cpp: the safetensors reader and writer: round trips, files
// written by Python's safetensors package, and every kind of corrupt file.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "io_test_util.h"
#include "recur/safetensors.h"

namespace recur::test {
namespace {

using nlohmann::ordered_json;

TEST(Safetensors, RoundTripEveryShapeFloat32AndFloat64) {
  TempDir dir;
  Random rng(1);
  Tensor a = rng.tensor<float>({3, 4});
  Tensor b = rng.tensor<double>({2, 3, 5});
  Tensor scalar = rng.tensor<double>({});  // rank 0, one element
  Tensor empty = Tensor::empty({0, 7}, DType::Float32);
  Tensor c = rng.tensor<float>({9});  // 36 bytes: the next tensor starts unaligned
  Tensor d = rng.tensor<double>({2, 2});
  const std::map<std::string, std::string> meta = {{"purpose", "test"}, {"json", "{\"a\": 1}"}};
  const std::string path = dir.file("t.safetensors");
  save_safetensors(
      path, {{"a", a}, {"b", b}, {"scalar", scalar}, {"empty", empty}, {"c", c}, {"d", d}}, meta);
  // Written to a temporary file, then renamed: nothing else is left in the folder.
  EXPECT_EQ(dir.list(), std::vector<std::string>{"t.safetensors"});
  // The buffer starts 8-byte aligned, as Python's writer does it.
  EXPECT_EQ(RawSafetensors::parse(read_file(path)).header.size() % 8, 0u);

  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata(), meta);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "b", "scalar", "empty", "c", "d"}));
  EXPECT_EQ(f.info("b").dtype, "F64");
  EXPECT_EQ(f.info("b").shape, (Shape{2, 3, 5}));
  EXPECT_EQ(f.info("scalar").shape, Shape{});
  EXPECT_EQ(f.info("a").end - f.info("a").begin, 48u);
  for (const auto& [name, t] : std::vector<std::pair<std::string, const Tensor*>>{
           {"a", &a}, {"b", &b}, {"scalar", &scalar}, {"empty", &empty}, {"c", &c}, {"d", &d}}) {
    Tensor back = f.read(name);
    EXPECT_EQ(back.shape(), t->shape()) << name;
    EXPECT_EQ(back.dtype(), t->dtype()) << name;
    EXPECT_EQ(bytes_of(back), bytes_of(*t)) << name;  // bit for bit
  }
  Tensor into = Tensor::zeros({3, 4}, DType::Float32);
  f.read_into("a", into);
  EXPECT_EQ(into.to_vector<float>(), a.to_vector<float>());
}

TEST(Safetensors, ConversionOnlyWhenAskedFor) {
  TempDir dir;
  Random rng(2);
  Tensor a = rng.tensor<float>({5});
  Tensor b = rng.tensor<double>({5});
  const std::string path = dir.file("t.safetensors");
  save_safetensors(path, {{"a", a}, {"b", b}});
  const SafetensorsFile f = SafetensorsFile::open(path);

  Tensor wide = Tensor::zeros({5}, DType::Float64);
  EXPECT_TRUE(throws_error([&] { f.read_into("a", wide); },
                           {"read_into", "'dst'", "dtype Float32", "got dtype float64"}));
  EXPECT_EQ(wide.to_vector<double>(), std::vector<double>(5, 0.0));  // untouched
  f.read_converted("a", wide);
  const std::vector<float> av = a.to_vector<float>();
  EXPECT_EQ(wide.to_vector<double>(), std::vector<double>(av.begin(), av.end()));

  Tensor narrow = Tensor::zeros({5}, DType::Float32);
  f.read_converted("b", narrow);
  const std::vector<double> bv = b.to_vector<double>();
  for (std::size_t i = 0; i < bv.size(); ++i) {
    EXPECT_EQ(narrow.to_vector<float>()[i], static_cast<float>(bv[i]));
  }
}

// BF16 and F16 values with every special case: ties, overflow to infinity, subnormals,
// -0, infinity and NaN.
std::vector<float> half_values() {
  std::vector<float> x = Random(4).vector<float>(40, -70000.0, 70000.0);
  for (float v : {1.0f + 0x1p-8f, 65520.0f, 3 * 0x1p-25f, 1e-40f, -0.0f, INFINITY, -NAN, 0.1f}) {
    x.push_back(v);
  }
  return x;
}

TEST(Safetensors, RoundTripBf16AndF16) {
  TempDir dir;
  Tensor x = Tensor::from_vector(half_values(), {6, 8});
  Tensor b = x.to(DType::BFloat16), h = x.to(DType::Float16);
  Tensor b_scalar = Tensor::from_vector(std::vector<bfloat16>{bfloat16(2.0f)}, {});
  Tensor h_empty = Tensor::empty({0, 3}, DType::Float16);
  const std::string path = dir.file("half.safetensors");
  save_safetensors(path,
                   {{"b", b}, {"x", x}, {"h", h}, {"b_scalar", b_scalar}, {"h_empty", h_empty}});
  // The header says what the safetensors format calls them.
  const ordered_json header = RawSafetensors::parse(read_file(path)).json();
  EXPECT_EQ(header["b"]["dtype"], "BF16");
  EXPECT_EQ(header["h"]["dtype"], "F16");
  EXPECT_EQ(header["b"]["data_offsets"], (ordered_json{0, 96}));

  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.info("b").dtype, "BF16");
  EXPECT_EQ(f.info("h").dtype, "F16");
  for (const auto& [name, t] : std::vector<std::pair<std::string, const Tensor*>>{
           {"b", &b}, {"h", &h}, {"b_scalar", &b_scalar}, {"h_empty", &h_empty}}) {
    Tensor back = f.read(name);
    EXPECT_EQ(back.dtype(), t->dtype()) << name;
    EXPECT_EQ(back.shape(), t->shape()) << name;
    EXPECT_EQ(bytes_of(back), bytes_of(*t)) << name;  // bit for bit
  }
  Tensor into = Tensor::zeros({6, 8}, DType::BFloat16);
  f.read_into("b", into);
  EXPECT_EQ(bytes_of(into), bytes_of(b));

  // Conversions, only when asked for: as Tensor::to does them.
  Tensor wide = Tensor::zeros({6, 8}, DType::Float32);
  EXPECT_TRUE(throws_error(
      [&] { f.read_into("b", wide); },
      {"read_into", "'dst'", "dtype BFloat16 (tensor 'b' is BF16)", "got dtype float32"}));
  EXPECT_EQ(bytes_of(wide), bytes_of(Tensor::zeros({6, 8}, DType::Float32)));  // untouched
  f.read_converted("b", wide);
  EXPECT_EQ(bytes_of(wide), bytes_of(b.to(DType::Float32)));
  Tensor wider = Tensor::zeros({6, 8}, DType::Float64);
  f.read_converted("h", wider);
  EXPECT_EQ(bytes_of(wider), bytes_of(h.to(DType::Float64)));
  Tensor narrow = Tensor::zeros({6, 8}, DType::Float16);
  f.read_converted("x", narrow);
  EXPECT_EQ(bytes_of(narrow), bytes_of(h));
  f.read_converted("b", narrow);  // BF16 -> F16: exact through float32, then one rounding
  EXPECT_EQ(bytes_of(narrow), bytes_of(b.to(DType::Float16)));
  Tensor none = Tensor::zeros({0, 3}, DType::BFloat16);
  f.read_converted("h_empty", none);
}

TEST(Safetensors, ReadsBf16AndF16WrittenByPythonSafetensors) {
  // tests/golden/gen_safetensors.py: x (F32) and torch's x.to(torch.bfloat16) and
  // x.to(torch.float16), saved by safetensors.torch.save_file.
  const SafetensorsFile f = SafetensorsFile::open(golden_dir() + "/half.safetensors");
  EXPECT_EQ(f.info("x_bf16").dtype, "BF16");
  EXPECT_EQ(f.info("x_f16").dtype, "F16");
  EXPECT_EQ(f.info("x_bf16").shape, (Shape{3, 5}));
  Tensor x = f.read("x");
  // PyTorch's roundings are recur's, bit for bit (the file holds no NaN).
  Tensor b = f.read("x_bf16"), h = f.read("x_f16");
  EXPECT_EQ(b.dtype(), DType::BFloat16);
  EXPECT_EQ(h.dtype(), DType::Float16);
  EXPECT_EQ(bytes_of(b), bytes_of(x.to(DType::BFloat16)));
  EXPECT_EQ(bytes_of(h), bytes_of(x.to(DType::Float16)));
  // The special values at the end: 65520, 3 * 2^-25, 1 + 2^-8, -0, infinity.
  const std::vector<float16> hv = h.to_vector<float16>();
  const std::vector<bfloat16> bv = b.to_vector<bfloat16>();
  EXPECT_EQ(hv[10].bits, 0x7c00u);  // FP16 infinity
  EXPECT_EQ(hv[11].bits, 0x0002u);  // the tie between 1 and 2 units of 2^-24: even
  EXPECT_EQ(bv[12].bits, 0x3f80u);  // the tie 1 + 2^-8: the even 1
  EXPECT_EQ(bv[13].bits, 0x8000u);
  EXPECT_EQ(hv[14].bits, 0x7c00u);
  Tensor wide = Tensor::zeros({3, 5}, DType::Float32);
  f.read_converted("x_f16", wide);
  EXPECT_EQ(bytes_of(wide), bytes_of(h.to(DType::Float32)));
}

TEST(Safetensors, ReadErrorsNameTheProblemAndLeaveTheTargetAlone) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  save_safetensors(path, {{"w", Tensor::zeros({2, 3}, DType::Float32)}});
  const SafetensorsFile f = SafetensorsFile::open(path);
  Tensor dst = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {3, 2});
  EXPECT_TRUE(throws_error([&] { f.read_into("w", dst); },
                           {"'dst'", "shape [2, 3] (tensor 'w')", "got shape [3, 2]"}));
  EXPECT_TRUE(throws_error([&] { f.read_into("nope", dst); }, {"'name'", "\"nope\""}));
  EXPECT_TRUE(throws_error([&] { f.info("nope"); }, {"does not hold"}));
  EXPECT_EQ(dst.to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_FALSE(f.contains("nope"));
  EXPECT_TRUE(f.contains("w"));
}

TEST(Safetensors, WriteErrors) {
  TempDir dir;
  const std::string path = dir.file("t.safetensors");
  Tensor t = Tensor::zeros({2}, DType::Float32);
  EXPECT_TRUE(throws_error(
      [&] {
        save_safetensors(path, {{"a", t}, {"a", t}});
      },
      {"save_safetensors", "'tensors[1]'", "\"a\" a second time"}));
  EXPECT_TRUE(throws_error(
      [&] {
        save_safetensors(path, {{"", t}});
      },
      {"'tensors[0]'", "non-empty"}));
  EXPECT_TRUE(throws_error(
      [&] {
        save_safetensors(path, {{"__metadata__", t}});
      },
      {"'tensors[0]'"}));
  EXPECT_TRUE(throws_error(
      [&] {
        save_safetensors(path, {{"u", TensorView()}});
      },
      {"'tensors[0] (\"u\")'", "undefined"}));
  EXPECT_TRUE(dir.list().empty());  // nothing written
  // An I/O failure says why, and leaves nothing behind.
  EXPECT_TRUE(throws_error(
      [&] {
        save_safetensors(dir.file("no/such/dir/t.safetensors"), {{"a", t}});
      },
      {"cannot create", "No such file or directory"}));
  EXPECT_TRUE(dir.list().empty());
}

TEST(Safetensors, ReadsFilesWrittenByPythonSafetensors) {
  // tests/golden/gen_safetensors.py: safetensors.torch.save_file(lstm.state_dict(), ...).
  const SafetensorsFile f = SafetensorsFile::open(golden_dir() + "/lstm_l2_bi.safetensors");
  EXPECT_EQ(f.names().size(), 16u);  // 2 layers x 2 directions x 4 tensors
  EXPECT_EQ(f.info("weight_ih_l1_reverse").shape, (Shape{16, 8}));
  EXPECT_EQ(f.info("bias_hh_l0").dtype, "F32");
  EXPECT_TRUE(f.metadata().empty());
  const SafetensorsFile e =
      SafetensorsFile::open(golden_dir() + "/lstm_l2_bi.expected.safetensors");
  EXPECT_EQ(e.metadata().at("reference"), "float64");
  EXPECT_EQ(e.info("y").shape, (Shape{6, 3, 8}));
  EXPECT_EQ(e.info("y").dtype, "F64");
}

// ---- corrupt files ----

class CorruptFile : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("t.safetensors");
    Random rng(3);
    save_safetensors(path_, {{"a", rng.tensor<float>({2, 3})}, {"b", rng.tensor<double>({4})}},
                     {{"k", "v"}});
    raw_ = RawSafetensors::parse(read_file(path_));
  }
  // Writes `bytes` and expects open() to fail with all of `parts` in the message.
  ::testing::AssertionResult rejects(const std::vector<unsigned char>& bytes,
                                     std::vector<std::string> parts) {
    write_file(path_, bytes);
    parts.insert(parts.begin(), "SafetensorsFile::open: " + path_);
    return throws_error([&] { SafetensorsFile::open(path_); }, parts);
  }
  ::testing::AssertionResult rejects_json(const ordered_json& j, std::vector<std::string> parts) {
    RawSafetensors r = raw_;
    r.set_json(j);
    return rejects(r.bytes(), std::move(parts));
  }

  TempDir dir_;
  std::string path_;
  RawSafetensors raw_;
};

TEST_F(CorruptFile, Truncated) {
  const std::vector<unsigned char> full = raw_.bytes();
  ASSERT_NO_THROW(SafetensorsFile::open(path_));
  const std::size_t header_end = 8 + raw_.header.size();
  for (std::size_t cut : {std::size_t(0), std::size_t(5), std::size_t(8), std::size_t(20),
                          header_end - 1, header_end, header_end + 10, full.size() - 1}) {
    const std::vector<unsigned char> part(full.begin(),
                                          full.begin() + static_cast<std::ptrdiff_t>(cut));
    EXPECT_TRUE(rejects(part, {"truncated"})) << "cut at " << cut << " of " << full.size();
  }
}

TEST_F(CorruptFile, BadHeaderJson) {
  RawSafetensors r = raw_;
  r.header[r.header.find(':')] = ';';
  EXPECT_TRUE(rejects(r.bytes(), {"not valid JSON", "parse error"}));
  r = raw_;
  r.header = "[1, 2]  ";
  EXPECT_TRUE(rejects(r.bytes(), {"does not start with '{'"}));
  EXPECT_TRUE(rejects_json(ordered_json::parse("{\"__metadata__\": {\"k\": 3}}"),
                           {"metadata 'k' is not a string"}));
}

TEST_F(CorruptFile, HeaderLengthLargerThanTheFile) {
  EXPECT_TRUE(
      rejects(raw_.bytes(static_cast<std::int64_t>(raw_.header.size() + raw_.data.size() + 1)),
              {"header length", "exceeds", "truncated"}));
  EXPECT_TRUE(rejects(raw_.bytes(std::int64_t(1) << 62), {"exceeds"}));
}

TEST_F(CorruptFile, OffsetsOutOfRange) {
  ordered_json j = raw_.json();
  j["b"]["data_offsets"] = {24, 24 + 32 + 8};
  j["b"]["shape"] = {5};
  EXPECT_TRUE(rejects_json(j, {"tensor 'b' [24, 64)", "reaches past the end", "56 bytes"}));
}

TEST_F(CorruptFile, OverlappingOffsets) {
  ordered_json j = raw_.json();
  j["b"]["data_offsets"] = {16, 48};
  j["a"]["data_offsets"] = {0, 24};
  // Keep the file's size consistent: the data now ends at 48, so drop 8 bytes.
  RawSafetensors r = raw_;
  r.set_json(j);
  r.data.resize(48);
  EXPECT_TRUE(rejects(r.bytes(), {"tensors 'a' [0, 24) and 'b' [16, 48) overlap"}));
}

TEST_F(CorruptFile, SizeDoesNotMatchDtypeAndShape) {
  ordered_json j = raw_.json();
  j["a"]["shape"] = {2, 4};
  EXPECT_TRUE(rejects_json(j, {"tensor 'a'", "span 24 bytes", "F32 and shape [2, 4] need 32"}));
  j = raw_.json();
  j["b"]["dtype"] = "F32";
  EXPECT_TRUE(rejects_json(j, {"tensor 'b'", "span 32 bytes", "need 16"}));
}

TEST_F(CorruptFile, GapsAndTrailingBytes) {
  RawSafetensors r = raw_;
  r.data.push_back(0);
  EXPECT_TRUE(rejects(r.bytes(), {"trailing bytes"}));
  ordered_json j = raw_.json();
  j["a"]["data_offsets"] = {8, 32};
  j["b"]["data_offsets"] = {32, 64};
  r = raw_;
  r.set_json(j);
  r.data.resize(64);
  EXPECT_TRUE(rejects(r.bytes(), {"bytes [0, 8) of the data belong to no tensor"}));
}

TEST_F(CorruptFile, BadFields) {
  ordered_json j = raw_.json();
  j["a"]["dtype"] = "F31";
  EXPECT_TRUE(rejects_json(j, {"tensor 'a'", "unknown dtype \"F31\""}));
  j = raw_.json();
  j["a"].erase("dtype");
  EXPECT_TRUE(rejects_json(j, {"tensor 'a'", "no \"dtype\""}));
  j = raw_.json();
  j["a"]["shape"] = {2, -3};
  EXPECT_TRUE(rejects_json(j, {"tensor 'a'", "non-negative integers"}));
  j = raw_.json();
  j["a"]["shape"] = "2x3";
  EXPECT_TRUE(rejects_json(j, {"tensor 'a'", "no \"shape\" array"}));
  j = raw_.json();
  j["a"]["data_offsets"] = {0};
  EXPECT_TRUE(rejects_json(j, {"tensor 'a'", "\"data_offsets\" must be [begin, end]"}));
  j = raw_.json();
  j["a"]["data_offsets"] = {24, 0};
  EXPECT_TRUE(rejects_json(j, {"tensor 'a'", "end before they begin"}));
  j = raw_.json();
  j["a"]["shape"] = {std::uint64_t(1) << 40, std::uint64_t(1) << 40};
  EXPECT_TRUE(rejects_json(j, {"tensor 'a'", "too large"}));
  j = raw_.json();
  j["a"] = 7;
  EXPECT_TRUE(rejects_json(j, {"tensor 'a'", "expected a JSON object"}));
}

TEST_F(CorruptFile, NotAFile) {
  EXPECT_TRUE(throws_error([&] { SafetensorsFile::open(dir_.file("missing")); },
                           {"cannot open", "No such file or directory"}));
  EXPECT_TRUE(throws_error([&] { SafetensorsFile::open(dir_.path()); }, {"not a regular file"}));
}

TEST_F(CorruptFile, OtherDtypesAreListedButNotRead) {
  ordered_json j = raw_.json();
  j["a"]["dtype"] = "U32";  // same size as F32
  RawSafetensors r = raw_;
  r.set_json(j);
  write_file(path_, r.bytes());
  const SafetensorsFile f = SafetensorsFile::open(path_);
  EXPECT_EQ(f.info("a").dtype, "U32");
  EXPECT_EQ(f.read_bytes("a").size(), 24u);
  Tensor dst = Tensor::zeros({2, 3}, DType::Float32);
  EXPECT_TRUE(throws_error([&] { f.read_into("a", dst); },
                           {"F32, F64, BF16, F16, I32 or I64", "'a' of dtype U32"}));
  EXPECT_TRUE(throws_error([&] { f.read("a"); }, {"F32, F64, BF16, F16, I32 or I64"}));
  EXPECT_TRUE(throws_error([&] { f.read_converted("a", dst); }, {"'a' of dtype U32"}));
}

TEST_F(CorruptFile, IntegerTensorsRoundTripAndAreNeverConverted) {
  const std::vector<std::int32_t> ids = {0, -1, 2147483647, -2147483647 - 1, 7, 9};
  const std::vector<std::int64_t> wide = {std::int64_t{1} << 62, -3};
  save_safetensors(
      path_, {{"ids", Tensor::from_vector(ids, {2, 3})}, {"wide", Tensor::from_vector(wide, {2})}});
  const SafetensorsFile f = SafetensorsFile::open(path_);
  EXPECT_EQ(f.info("ids").dtype, "I32");
  EXPECT_EQ(f.info("wide").dtype, "I64");
  EXPECT_EQ(f.read("ids").to_vector<std::int32_t>(), ids);
  EXPECT_EQ(f.read("ids").dtype(), DType::Int32);
  EXPECT_EQ(f.read("wide").to_vector<std::int64_t>(), wide);
  Tensor as_float = Tensor::zeros({2, 3}, DType::Float32);
  EXPECT_TRUE(throws_error([&] { f.read_converted("ids", as_float); },
                           {"'dst'", "dtype Int32 (tensor 'ids' is I32)", "got dtype float32"}));
  Tensor as_int64 = Tensor::zeros({2, 3}, DType::Int64);
  EXPECT_TRUE(throws_error([&] { f.read_converted("ids", as_int64); },
                           {"dtype Int32 (tensor 'ids' is I32)", "got dtype int64"}));
  EXPECT_EQ(as_float.to_vector<float>(), std::vector<float>(6, 0.0f));
  EXPECT_STREQ(safetensors_dtype(DType::Int64), "I64");
}

// ---- hostile files ----

// `depth` nested arrays: [[[...]]].
std::string nested(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST_F(CorruptFile, DeepNestingIsRejectedWhileParsing) {
  // The value of a tensor entry, of its shape, and of the metadata: each nested 10^3, 10^5
  // and 10^6 levels (a 2 MB header). Dumping or comparing such a value would recurse once
  // per level and overflow the stack.
  for (const std::size_t depth : {std::size_t(1000), std::size_t(100000), std::size_t(1000000)}) {
    SCOPED_TRACE(depth);
    const std::string entry = "{\"a\":" + nested(depth) + "}";
    const std::string shape =
        "{\"a\":{\"dtype\":\"F32\",\"shape\":" + nested(depth) + ",\"data_offsets\":[0,24]}}";
    const std::string metadata = "{\"__metadata__\":{\"k\":" + nested(depth) + "}}";
    for (const std::string& header : {entry, shape, metadata}) {
      RawSafetensors r = raw_;
      r.header = header;
      EXPECT_TRUE(rejects(r.bytes(), {"the header nests deeper than 64 levels"}));
    }
  }
}

TEST_F(CorruptFile, MessagesQuoteAtMostAFewHundredCharacters) {
  // A 1 MB shape, a 1 MB non-string metadata value and a 1 MB tensor name, each bad: the
  // message names the problem and quotes a few hundred characters of it.
  auto short_rejection = [&](const ordered_json& j, const std::string& part) {
    RawSafetensors r = raw_;
    r.set_json(j);
    const ::testing::AssertionResult result = rejects(r.bytes(), {part, "..."});
    if (result && std::string(result.message()).size() > 1000) {
      return ::testing::AssertionFailure()
             << "a message of " << std::string(result.message()).size() << " characters";
    }
    return result;
  };
  ordered_json j = raw_.json();
  j["a"]["shape"] = ordered_json::array();
  for (int i = 0; i < 100000; ++i) j["a"]["shape"].push_back("xxxxxxxxx");
  EXPECT_TRUE(short_rejection(j, "is not a list of non-negative integers"));
  j = raw_.json();
  j["__metadata__"]["k"] = ordered_json::array();
  for (int i = 0; i < 100000; ++i) j["__metadata__"]["k"].push_back(123456789);
  EXPECT_TRUE(short_rejection(j, "metadata 'k' is not a string"));
  j = raw_.json();
  j[std::string(1000000, 'n')] = 7;
  EXPECT_TRUE(short_rejection(j, "expected a JSON object, got 7"));
}

TEST_F(CorruptFile, ZeroElementTensorsReadAndConvert) {
  // [4, 0] of F64 and [0] of F32: no bytes, data_offsets [n, n].
  const std::string path = dir_.file("empty.safetensors");
  Tensor f64 = Tensor::zeros({4, 0}, DType::Float64), f32 = Tensor::zeros({0}, DType::Float32);
  save_safetensors(path, {{"e64", f64}, {"e32", f32}, {"b", Tensor::zeros({2}, DType::Float64)}});
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.info("e64").shape, (Shape{4, 0}));
  Tensor to32 = Tensor::zeros({4, 0}, DType::Float32), to64 = Tensor::zeros({0}, DType::Float64);
  f.read_converted("e64", to32);  // F64 -> F32 of nothing
  f.read_converted("e32", to64);  // F32 -> F64 of nothing
  f.read_into("e64", f64);
  EXPECT_EQ(f.read("e64").numel(), 0);
  EXPECT_TRUE(f.read_bytes("e32").empty());
}

TEST_F(CorruptFile, AFifoIsRejectedAtOnce) {
  // open() of a FIFO without O_NONBLOCK waits for a writer that never comes.
  const std::string fifo = dir_.file("fifo.safetensors");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_TRUE(throws_error([&] { SafetensorsFile::open(fifo); }, {"not a regular file"}));
  EXPECT_TRUE(throws_error([&] { SafetensorsFile::open("/dev/null"); }, {"not a regular file"}));
}

TEST_F(CorruptFile, AMovedFromFileThrows) {
  SafetensorsFile f = SafetensorsFile::open(path_);
  SafetensorsFile g = std::move(f);
  EXPECT_EQ(g.names().size(), 2u);
  const std::vector<std::string> parts = {"argument 'this'", "moved from"};
  EXPECT_TRUE(throws_error([&] { (void)f.path(); }, parts));      // NOLINT: use after move
  EXPECT_TRUE(throws_error([&] { (void)f.names(); }, parts));     // NOLINT
  EXPECT_TRUE(throws_error([&] { (void)f.info("a"); }, parts));   // NOLINT
  EXPECT_TRUE(throws_error([&] { (void)f.read("a"); }, parts));   // NOLINT
  EXPECT_TRUE(throws_error([&] { (void)f.metadata(); }, parts));  // NOLINT
}

// The pid of a process that has just ended (and been reaped).
pid_t a_dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

TEST(SafetensorsTemporaries, ASaveRemovesTheTemporariesOfDeadWriters) {
  // A writer killed where there are no unnamed files (O_TMPFILE) leaves path.tmp.<pid>.
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  const std::string dead = path + ".tmp." + std::to_string(a_dead_pid());
  const std::string running = path + ".tmp." + std::to_string(::getppid());  // alive
  const std::string other = dir.file("n.safetensors.tmp.1");  // another file's: not ours
  for (const std::string& f : {dead, running, other}) write_file(f, {1, 2, 3});
  save_safetensors(path, {{"a", Tensor::zeros({3}, DType::Float32)}});
  struct stat st;
  EXPECT_NE(::stat(dead.c_str(), &st), 0) << "the dead writer's temporary is still there";
  EXPECT_EQ(::stat(running.c_str(), &st), 0) << "a running writer's temporary was removed";
  EXPECT_EQ(::stat(other.c_str(), &st), 0) << "another file's temporary was removed";
  EXPECT_EQ(SafetensorsFile::open(path).names(), std::vector<std::string>{"a"});
}

}  // namespace
}  // namespace recur::test
