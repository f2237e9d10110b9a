// The CLI's batch-run parts on their own: JSON text for names that are not UTF-8, and the
// record files.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "base/error.h"
#include "tests/test_util.h"
#include "tools/musiq/json_text.h"
#include "tools/musiq/records.h"

namespace musiq::cli {
namespace {

TEST(JsonText, BytesThatAreNotUtf8BecomeSurrogateEscapes) {
  // What Python's json.dumps(os.fsdecode(b"caf\xe9\xff.png")) writes, less ensure_ascii.
  EXPECT_EQ(json_string("caf\xe9\xff.png"), "\"caf\\udce9\\udcff.png\"");
  EXPECT_EQ(json_string("caf\xc3\xa9"), "\"caf\xc3\xa9\"");               // valid: verbatim
  EXPECT_EQ(json_string("\xed\xa0\x80"), "\"\\udced\\udca0\\udc80\"");  // a UTF-8 surrogate
  EXPECT_EQ(json_string("\xc0\xaf"), "\"\\udcc0\\udcaf\"");             // overlong '/'
  EXPECT_EQ(json_string("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
}

TEST(JsonText, RoundTripsAnyBytes) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes(rng() % 24, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() % 256);
    const std::string text = "{\"path\":" + json_string(bytes) + ",\"score\":1.5e3}";
    const auto members = parse_flat_json_object(text);
    ASSERT_TRUE(members) << text;
    ASSERT_EQ(members->at("path"), bytes) << text;
  }
}

TEST(JsonText, DecodesStandardEscapes) {
  const auto m = parse_flat_json_object(
      R"( {"a":"\u00e9\ud83d\ude00\/","n":null,"t":true,"x":-1.5E-3} )");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->at("a"), "\xc3\xa9\xf0\x9f\x98\x80/");
  EXPECT_EQ(m->size(), 1u);
}

TEST(JsonText, RefusesWhatIsNotAFlatObject) {
  for (const char* text : {"word", "[1]", "{\"a\":1} x", "{\"a\":[1]}", "{\"a\":\"\\udc00\"}",
                           "{\"a\":\"unterminated}", "{\"a\" 1}", ""})
    EXPECT_FALSE(parse_flat_json_object(text)) << text;
}

// A run whose output file another program replaces (renames a file over it) or removes
// fails loudly instead of writing on into a file nobody will see.
TEST(RecordSink, NoticesItsFileReplacedOrRemovedInEveryFormat) {
  Record record;
  record.path = "/photos/a.png";
  record.model = "koniq";
  record.score = 50;
  for (Format format : {Format::kJsonl, Format::kCsv, Format::kJson, Format::kTable}) {
    for (bool remove : {false, true}) {
      const std::string path = test::temp_path(test::name("replaced-", int(format), remove));
      const std::string other = path + ".other";
      std::filesystem::remove(path);
      std::unique_ptr<RecordSink> sink = RecordSink::open(format, path, false, false);
      sink->write(record);
      std::ofstream(other) << "someone else's\n";
      if (remove)
        std::filesystem::remove(path);
      else
        std::filesystem::rename(other, path);
      try {
        sink->write(record);
        sink->finish();
        ADD_FAILURE() << "format " << int(format) << (remove ? ": removed" : ": replaced");
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(path + ": replaced or removed by another program"),
                  std::string::npos)
            << e.what();
      }
      if (!remove) {
        std::ifstream in(path);
        std::string content((std::istreambuf_iterator<char>(in)), {});
        EXPECT_EQ(content, "someone else's\n") << int(format);
      }
      sink.reset();
      std::filesystem::remove(other);
    }
  }
}

// json and table output to a file that did not exist: a failed run leaves nothing.
TEST(RecordSink, AFailedJsonRunLeavesNoFileBehind) {
  const std::string path = test::temp_path("never-finished.json");
  std::filesystem::remove(path);
  RecordSink::open(Format::kJson, path, false, false).reset();
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace musiq::cli
