// The training-loop toolkit (hg::train): common CLI flags and their defaults in --help, the progress bar (its
// text, and that it draws nothing when disabled), CSV logs (format, flushing, appending on resume, bad files),
// and the SVG plot (well-formed XML, one polyline per series, legend and tick labels, NaN gaps, one-point and
// empty series).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "testing.h"

#include <hopgrad/nn/serialize/atomic_file.h>

namespace fs = std::filesystem;
namespace train = hg::train;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A fresh folder under the temp directory, removed at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("hopgrad_train_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// Parses `args` (without the program name) into `app`.
void parse(CLI::App& app, std::vector<std::string> args) {
  std::vector<const char*> argv{"prog"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
}

// A minimal XML well-formedness check for what svg_plot writes: every tag closes in order, attribute values
// are quoted, and text holds no raw '<' or '&' except entities. Returns "" or the first problem.
std::string xml_problem(const std::string& xml) {
  std::vector<std::string> open;
  size_t i = 0;
  if (xml.starts_with("<?xml")) i = xml.find("?>") + 2;
  while (i < xml.size()) {
    if (xml[i] == '&') {
      size_t end = xml.find(';', i);
      std::string entity = xml.substr(i, end == std::string::npos ? 8 : end - i + 1);
      if (entity != "&amp;" && entity != "&lt;" && entity != "&gt;" && entity != "&quot;" && entity != "&apos;")
        return "bad entity " + entity;
      i = end + 1;
      continue;
    }
    if (xml[i] != '<') { ++i; continue; }
    size_t end = i + 1;
    for (char quote = 0; end < xml.size() && (quote || xml[end] != '>'); ++end) {
      if (quote && xml[end] == quote) quote = 0;
      else if (!quote && (xml[end] == '"' || xml[end] == '\'')) quote = xml[end];
      else if (!quote && xml[end] == '<') return "'<' inside a tag at " + std::to_string(end);
    }
    if (end >= xml.size()) return "unterminated tag at " + std::to_string(i);
    std::string tag = xml.substr(i + 1, end - i - 1);
    bool closing = tag.starts_with("/"), self_closing = tag.ends_with("/");
    std::string name = tag.substr(closing ? 1 : 0, tag.find_first_of(" /\n", closing ? 1 : 0) - (closing ? 1 : 0));
    if (closing) {
      if (open.empty() || open.back() != name)
        return "</" + name + "> closes " + (open.empty() ? "nothing" : open.back());
      open.pop_back();
    } else if (!self_closing) {
      open.push_back(name);
    }
    i = end + 1;
  }
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  return "";
}

}  // namespace

TEST_CASE("train: common flags with defaults, --help, validation, data dir") {
  train::CommonFlags flags;
  flags.epochs = 7;
  flags.data_dir = "/data/here";
  CLI::App app{"test program"};
  train::add_common_flags(app, flags);
  int hidden = 32;
  app.add_option("--hidden", hidden, "hidden units");  // added after: shows its default too

  std::string help = app.help();
  for (const char* flag : {"--epochs", "--batch-size", "--lr", "--seed", "--device", "--threads", "--data-dir",
                           "--out-dir", "--no-progress", "--hidden"})
    CHECK_MESSAGE(help.find(flag) != std::string::npos, flag, " missing from --help:\n", help);
  CHECK(help.find("--epochs N=7 ") != std::string::npos);       // defaults, as CLI11 shows them
  CHECK(help.find("--batch-size N=64 ") != std::string::npos);
  CHECK(help.find("--device DEVICE=cpu ") != std::string::npos);
  CHECK(help.find("--hidden INT=32 ") != std::string::npos);  // an option the program added afterwards
  CHECK(help.find("/data/here") != std::string::npos);

  parse(app, {"--epochs", "3", "--batch-size=16", "--lr", "0.05", "--seed", "9", "--device", "cpu", "--threads",
              "2", "--out-dir", "somewhere", "--no-progress", "--hidden", "8"});
  CHECK(flags.epochs == 3);
  CHECK(flags.batch_size == 16);
  CHECK(flags.lr == 0.05);
  CHECK(flags.seed == 9);
  CHECK(flags.threads == 2);
  CHECK(flags.out_dir == "somewhere");
  CHECK_FALSE(flags.progress);
  CHECK_FALSE(flags.show_progress());
  CHECK(hidden == 8);

  for (std::vector<std::string> bad : {std::vector<std::string>{"--lr", "0"}, {"--epochs", "0"}, {"--device", "tpu"},
                                       {"--threads", "-1"}, {"--batch-size", "x"}}) {
    train::CommonFlags f;
    CLI::App a;
    train::add_common_flags(a, f);
    CHECK_THROWS_AS(parse(a, bad), CLI::ParseError);
  }

  // Data folder: $HOPGRAD_DATA_DIR first, then <source>/../shared/data when it exists, else ../shared/data.
  const char* saved = std::getenv("HOPGRAD_DATA_DIR");
  std::string saved_value = saved ? saved : "";
  ::setenv("HOPGRAD_DATA_DIR", "/from/env", 1);
  CHECK(train::default_data_dir(HG_SOURCE_DIR) == "/from/env");
  ::unsetenv("HOPGRAD_DATA_DIR");
  TempDir root("flags");
  fs::create_directories(root.path / "shared" / "data");
  fs::create_directories(root.path / "src");
  CHECK(train::default_data_dir(root.path / "src") == (root.path / "shared" / "data").lexically_normal());
  CHECK(train::default_data_dir(root.path / "nowhere" / "src") == fs::path("../shared/data"));
  if (saved) ::setenv("HOPGRAD_DATA_DIR", saved_value.c_str(), 1);

  // apply_common_flags creates the output folder and returns the device; a file in the way is an error.
  train::CommonFlags applied;
  applied.out_dir = root.path / "runs" / "a";
  CHECK(train::apply_common_flags(applied) == hg::kCPU);
  CHECK(fs::is_directory(applied.out_dir));
  std::ofstream(root.path / "file") << "x";
  applied.out_dir = root.path / "file";
  CHECK_THROWS_WITH_AS(train::apply_common_flags(applied), doctest::Contains("--out-dir: cannot create the folder"),
                       hg::Error);
}

TEST_CASE("train: an example's error line names the program once") {
  // The program's own checks already start with its name; errors from the library (an op's check) do not.
  CHECK(hg::train::error_line("deeprc", std::runtime_error("deeprc: --resume: there is no runs/x.csv")) ==
        "deeprc: --resume: there is no runs/x.csv");
  CHECK(hg::train::error_line("deeprc", std::runtime_error("matmul: expected [2, 3] x [3, k], got [2, 3] x [4, 5]")) ==
        "deeprc: matmul: expected [2, 3] x [3, k], got [2, 3] x [4, 5]");
  CHECK(hg::train::error_line("vit", std::runtime_error("vitals: bad")) == "vit: vitals: bad");
  CHECK(hg::train::error_line("vit", std::runtime_error("vit")) == "vit: vit");
}

TEST_CASE("train: run files — the settings a resume must match, and the results CSV") {
  TempDir dir("run_files");
  const fs::path config = dir.path / "sub" / "x_config.json";
  CHECK_THROWS_WITH_AS(hg::train::check_resume_config("x", config, R"({"lr": 1})", true),
                       doctest::Contains("x: --resume: there is no"), hg::Error);
  hg::train::check_resume_config("x", config, R"({"lr": 1})", false);  // a fresh run records its settings
  CHECK(fs::exists(config));
  hg::train::check_resume_config("x", config, R"({"lr": 1})", true);  // the same settings continue
  CHECK_THROWS_WITH_AS(hg::train::check_resume_config("x", config, R"({"lr": 2})", true),
                       doctest::Contains("written by a run with other settings"), hg::Error);

  const fs::path csv = dir.path / "x_results.csv";
  hg::train::write_results_csv("x", csv, {{"metric", "mean"}, {"AUC, test", "0.9"}, {"say \"hi\"", "1"}});
  std::ifstream in(csv);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text == "metric,mean\n\"AUC, test\",0.9\n\"say \"\"hi\"\"\",1\n");
  CHECK_THROWS_WITH_AS(hg::train::write_results_csv("x", dir.path / "missing" / "y.csv", {{"a"}}),
                       doctest::Contains("x: could not write"), hg::Error);
}

// A run killed while recording its settings: the file is written atomically, so there is none (the next run starts
// afresh) or the previous one, never an empty file that every later --resume refuses as other settings.
TEST_CASE("train: a run killed while writing its config file leaves no partial file") {
  TempDir dir("config_kill");
  const fs::path config = dir.path / "x_config.json";
  auto killed_writing = [&](const std::string& settings) {
    hgtest::run_in_child_expecting_exit([&] {  // the child only writes, and dies at its first write
      hg::serialize::detail::ScopedWriteHook hook([](const fs::path&, uint64_t, size_t) { ::_exit(42); });
      hg::train::check_resume_config("x", config, settings, false);
    });
  };
  killed_writing(R"({"lr": 1})");
  CHECK_FALSE(fs::exists(config));
  CHECK_THROWS_WITH_AS(hg::train::check_resume_config("x", config, R"({"lr": 1})", true),
                       doctest::Contains("x: --resume: there is no"), hg::Error);
  hg::train::check_resume_config("x", config, R"({"lr": 1})", false);
  killed_writing(R"({"lr": 2})");  // a fresh run over the folder dies recording its settings: the old ones stay
  hg::train::check_resume_config("x", config, R"({"lr": 1})", true);
  fs::create_directories(dir.path / "taken");  // a folder where the file should go: the rename fails
  CHECK_THROWS_WITH_AS(hg::train::check_resume_config("x", dir.path / "taken", "{}", false),
                       doctest::Contains("x: could not write"), hg::Error);
}

TEST_CASE("train: progress bar text, ETA, and silence when disabled") {
  CHECK(train::format_duration(0) == "0:00");
  CHECK(train::format_duration(65.4) == "1:05");
  CHECK(train::format_duration(3723) == "1:02:03");
  CHECK(train::format_duration(-1) == "?");
  CHECK(train::format_duration(kNaN) == "?");
  CHECK(train::format_duration(1e300) == "?");

  // 25 of 100 steps in 10 s: 2.5 it/s, 75 steps left at 0.4 s each → 30 s.
  std::string line = train::render_progress("epoch 2/5", 25, 100, 0.123456, 800, 10.0);
  CHECK(line.starts_with("epoch 2/5 [======>                 ]  25/100"));
  CHECK(line.find("loss 0.1235") != std::string::npos);
  CHECK(line.find("2.5 it/s") != std::string::npos);
  CHECK(line.find("ETA 0:30") != std::string::npos);
  CHECK(train::render_progress("x", 0, 10, kNaN, 0, 0).find("ETA ?") != std::string::npos);
  CHECK(train::render_progress("x", 0, 10, kNaN, 0, 0).find("loss") == std::string::npos);
  CHECK(train::render_progress("x", 10, 10, 1, 1, 2).find("[========================]") != std::string::npos);

  std::FILE* out = std::tmpfile();
  REQUIRE(out != nullptr);
  auto contents = [&] {
    std::fflush(out);
    std::rewind(out);
    std::string text;
    for (int c; (c = std::fgetc(out)) != EOF;) text += static_cast<char>(c);
    return text;
  };
  {
    // Disabled (stdout not a terminal, or --no-progress): the only output is the summary line.
    train::ProgressBar bar("epoch 1/1", 3, /*enabled=*/false, out);
    bar.update(1.0, 2);  // the running loss is weighted by the samples of each batch
    bar.update(4.0, 1);
    bar.update(0.5, 1);
    CHECK(bar.mean_loss() == doctest::Approx((2 * 1.0 + 4.0 + 0.5) / 4));
    CHECK(bar.steps() == 3);
    bar.finish("epoch 1: loss 1.6250");
    bar.finish("again");  // a second finish prints nothing
  }
  CHECK(contents() == "epoch 1: loss 1.6250\n");

  std::FILE* drawn = std::tmpfile();
  REQUIRE(drawn != nullptr);
  {
    train::ProgressBar bar("epoch 1/1", 2, /*enabled=*/true, drawn);
    bar.update(0.5);
    bar.update(0.25);  // the last step always redraws
    bar.finish("done");
  }
  std::fflush(drawn);
  std::rewind(drawn);
  std::string text;
  for (int c; (c = std::fgetc(drawn)) != EOF;) text += static_cast<char>(c);
  CHECK(text.find("\r\x1b[Kepoch 1/1 [>") != std::string::npos);  // the bar at step 0
  CHECK(text.find("2/2  loss 0.3750") != std::string::npos);       // and at the last step
  CHECK(text.ends_with("\r\x1b[Kdone\n"));                         // erased, then the summary
  std::fclose(drawn);
  std::fclose(out);
  CHECK_THROWS_WITH_AS(train::ProgressBar("x", -1, false), doctest::Contains("total of -1 steps"), hg::Error);
}

TEST_CASE("train: CSV log writes, flushes, reads back and appends on resume") {
  TempDir dir("csv");
  fs::path path = dir.path / "sub" / "log.csv";  // the parent folder is created
  {
    train::CsvLog log(path, {"epoch", "train_loss", "val_accuracy"});
    log.write({1, 0.5, 0.875});
    // Flushed per row: the file already holds it while the log is open (a killed run keeps it).
    CHECK(read_text(path) == "epoch,train_loss,val_accuracy\n1,0.5,0.875\n");
    log.write({2, 0.1 + 0.2, kNaN});
    CHECK(log.rows() == 2);
  }
  CHECK(read_text(path) == "epoch,train_loss,val_accuracy\n1,0.5,0.875\n2,0.30000000000000004,nan\n");
  {
    // Resume: the earlier rows are read back (for the plot), new ones appended after them.
    train::CsvLog log(path, {"epoch", "train_loss", "val_accuracy"}, /*append=*/true);
    CHECK(log.rows() == 2);
    log.write({3, 0.25, 0.9});
    CHECK(log.column("epoch") == std::vector<double>{1, 2, 3});
    std::vector<double> accuracy = log.column("val_accuracy");
    CHECK(accuracy[0] == 0.875);
    CHECK(std::isnan(accuracy[1]));
    CHECK(log.column("train_loss")[1] == 0.1 + 0.2);  // exact round trip
    CHECK_THROWS_WITH_AS(log.column("loss"), doctest::Contains("no column 'loss'"), hg::Error);
    CHECK_THROWS_WITH_AS(log.write({4, 0.1}), doctest::Contains("a row of 2 values; expected 3"), hg::Error);
  }
  CHECK(read_text(path).ends_with("2,0.30000000000000004,nan\n3,0.25,0.9\n"));
  // Without append the file starts over.
  { train::CsvLog log(path, {"epoch", "train_loss", "val_accuracy"}); }
  CHECK(read_text(path) == "epoch,train_loss,val_accuracy\n");
  // Append to a file that does not exist yet: a fresh log.
  { train::CsvLog log(dir.path / "new.csv", {"epoch"}, true); log.write({1}); }
  CHECK(read_text(dir.path / "new.csv") == "epoch\n1\n");

  // An empty file (stopped before the header was written) starts afresh.
  std::ofstream(dir.path / "empty.csv").close();
  { train::CsvLog log(dir.path / "empty.csv", {"epoch"}, true); log.write({1}); }
  CHECK(read_text(dir.path / "empty.csv") == "epoch\n1\n");

  // Refused: another run's header, malformed rows, bad column names.
  CHECK_THROWS_WITH_AS(train::CsvLog(path, {"epoch", "loss"}, true),
                       doctest::Contains("line 1 is the header 'epoch,train_loss,val_accuracy'; expected 'epoch,loss'"),
                       hg::Error);
  std::ofstream(dir.path / "bad.csv") << "epoch,loss\n1,0.5\n2,abc\n";
  CHECK_THROWS_WITH_AS(train::CsvLog(dir.path / "bad.csv", {"epoch", "loss"}, true),
                       doctest::Contains("line 3, column 'loss': 'abc' is not a number"), hg::Error);
  std::ofstream(dir.path / "short.csv") << "epoch,loss\n1,0.5,7\n";
  CHECK_THROWS_WITH_AS(train::CsvLog(dir.path / "short.csv", {"epoch", "loss"}, true),
                       doctest::Contains("line 2 has 3 fields; expected 2"), hg::Error);
  std::ofstream(dir.path / "cut.csv") << "epoch,loss\n1,0.5\n2,0.";
  CHECK_THROWS_WITH_AS(train::CsvLog(dir.path / "cut.csv", {"epoch", "loss"}, true),
                       doctest::Contains("line 3 has no line end"), hg::Error);
  CHECK_THROWS_WITH_AS(train::CsvLog(dir.path / "x.csv", {"epoch", "a,b"}), doctest::Contains("'a,b'"), hg::Error);
  CHECK_THROWS_WITH_AS(train::CsvLog(dir.path / "x.csv", {"epoch", "epoch"}), doctest::Contains("appears twice"),
                       hg::Error);
}

TEST_CASE("train: a log ahead of its checkpoint drops its last rows, on disk too") {
  // A run killed after logging an epoch but before saving its checkpoint: on resume, the rows after the checkpoint
  // go (rewritten atomically) and the epochs run again.
  TempDir dir("csv_drop");
  const fs::path path = dir.path / "log.csv";
  {
    train::CsvLog log(path, {"run", "epoch"});
    for (double row : {1.0, 2.0}) log.write({0, row});
    for (double row : {1.0, 2.0, 3.0}) log.write({1, row});
  }
  train::CsvLog log(path, {"run", "epoch"}, /*append=*/true);
  // Run 1 (rows 2, 3, 4) has a checkpoint at epoch 1: its rows 3 and 4 are ahead, and they are the log's last.
  CHECK(train::rows_ahead_of_checkpoint(log, {2, 3, 4}, 1, "r1.ckpt", "prog") == 2);
  CHECK(train::rows_ahead_of_checkpoint(log, {2, 3, 4}, 3, "r1.ckpt", "prog") == 0);
  // Run 0 (rows 0, 1) is finished; a missing checkpoint of it cannot be repaired by dropping rows.
  CHECK_THROWS_WITH_AS(train::rows_ahead_of_checkpoint(log, {0, 1}, 0, "r0.ckpt", "prog"),
                       doctest::Contains(("prog: --resume: " + path.string() +
                                          " has 2 epochs of this run but its checkpoint r0.ckpt does not exist")
                                             .c_str()),
                       hg::Error);
  log.drop_last(2);
  CHECK(log.rows() == 3);
  CHECK(read_text(path) == "run,epoch\n0,1\n0,2\n1,1\n");
  log.write({1, 2});  // appending goes on after the kept rows
  CHECK(read_text(path) == "run,epoch\n0,1\n0,2\n1,1\n1,2\n");
  CHECK(log.column("epoch") == std::vector<double>{1, 2, 1, 2});
  CHECK_THROWS_WITH_AS(log.drop_last(5), doctest::Contains("cannot drop the last 5 rows of 4"), hg::Error);
  for (const auto& entry : fs::directory_iterator(dir.path))  // no temporary file left behind
    CHECK(entry.path().filename() == "log.csv");
}

TEST_CASE("train: list flags, range messages, and when a missing dataset may be skipped") {
  CHECK(train::split_names("softmax,,topk,", "--models") == std::vector<std::string>{"softmax", "topk"});
  CHECK_THROWS_WITH_AS(train::split_names(",", "--models"), doctest::Contains("--models: expects at least one name, got ','"),
                       hg::Error);
  // Bounds print as given: a lower bound of 1e-7 is not "0.000000".
  double rate = 0.5;
  CLI::App app;
  app.add_option("--rate", rate)->check(train::in_range(1e-7, 1));
  try {
    parse(app, {"--rate", "0"});
    FAIL("--rate 0 was accepted");
  } catch (const CLI::ParseError& e) {
    CHECK(std::string(e.what()).find("must be a number in [1e-07, 1], got 0") != std::string::npos);
  }
  // Skipping is for the default data folder only, and only when no result was asked for.
  const char* saved = std::getenv("HOPGRAD_DATA_DIR");
  const std::string saved_value = saved ? saved : "";
  ::unsetenv("HOPGRAD_DATA_DIR");
  train::CommonFlags flags;
  CLI::App defaulted, given;
  train::add_common_flags(defaulted, flags);
  train::add_common_flags(given, flags);
  parse(defaulted, {});
  parse(given, {"--data-dir", "/nowhere"});
  CHECK(train::may_skip_missing_data(defaulted));
  CHECK_FALSE(train::may_skip_missing_data(defaulted, /*result_asked_for=*/true));
  CHECK_FALSE(train::may_skip_missing_data(given));
  ::setenv("HOPGRAD_DATA_DIR", "/from/env", 1);
  CHECK_FALSE(train::may_skip_missing_data(defaulted));
  if (saved)
    ::setenv("HOPGRAD_DATA_DIR", saved_value.c_str(), 1);
  else
    ::unsetenv("HOPGRAD_DATA_DIR");
}

TEST_CASE("train: SVG plot is well-formed, with one polyline per series, labels and a legend") {
  std::vector<double> epochs{1, 2, 3, 4, 5};
  std::vector<train::Panel> panels{
      {"loss", {{"train", epochs, {2.3, 0.9, 0.5, 0.4, 0.35}}, {"val", epochs, {2.1, 1.0, 0.6, 0.55, 0.5}, true}}},
      {"accuracy",
       {{"train", epochs, {0.5, 0.8, 0.9, 0.92, 0.95}}, {"val", epochs, {0.55, 0.79, 0.88, 0.9, 0.91}, true}}},
      {"lr <&> \"x\"", {{"lr", epochs, {1e-3, 1e-3, 5e-4, 2e-4, 1e-4}}}}};
  std::string svg = train::svg_plot(panels, "MLP & MNIST");
  CHECK(xml_problem(svg) == "");
  CHECK(svg.starts_with("<?xml"));
  CHECK(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
  CHECK(count(svg, "<polyline") == 5);
  CHECK(count(svg, "stroke-dasharray") == 2 * 2);  // the two val curves and their legend samples
  CHECK(count(svg, "<g class=\"panel\">") == 3);
  CHECK(count(svg, "<g class=\"legend\">") == 3);
  CHECK(svg.find("MLP &amp; MNIST") != std::string::npos);     // escaped title
  CHECK(svg.find("lr &lt;&amp;&gt; &quot;x&quot;") != std::string::npos);
  CHECK(svg.find(">epoch</text>") != std::string::npos);        // x-axis label
  for (const char* tick : {">1</text>", ">5</text>", ">0.5</text>", ">1.0</text>"})
    CHECK_MESSAGE(svg.find(tick) != std::string::npos, "tick label ", tick);
  CHECK(svg.find(">train</text>") != std::string::npos);        // legend entries
  CHECK(svg.find(">val</text>") != std::string::npos);
  CHECK(svg.find("nan") == std::string::npos);

  // NaN splits a curve in two; a point with no finite neighbour becomes a dot; an all-NaN or empty series and a
  // single-point panel still give valid SVG.
  std::vector<train::Panel> gaps{
      {"gap", {{"a", {1, 2, 3, 4, 5}, {1, 2, kNaN, 4, 5}}, {"b", {1, 2, 3}, {kNaN, 7, kNaN}}}},
      {"one point", {{"only", {1}, {0.25}}}},
      {"nothing", {{"all missing", {1, 2}, {kNaN, kNaN}}, {"empty", {}, {}}}},
      {"no series", {}}};
  std::string gappy = train::svg_plot(gaps);
  CHECK(xml_problem(gappy) == "");
  CHECK(count(gappy, "<polyline") == 2);
  CHECK(count(gappy, "<circle") == 2);
  CHECK(gappy.find("nan") == std::string::npos);
  CHECK(gappy.find("inf") == std::string::npos);
  CHECK(gappy.find(">all missing</text>") != std::string::npos);
  CHECK(xml_problem(train::svg_plot(std::vector<train::Panel>{})) == "");

  CHECK_THROWS_WITH_AS(train::svg_plot(std::vector<train::Panel>{{"p", {{"s", {1, 2}, {1}}}}}),
                       doctest::Contains("series 's' of panel 'p' has 2 x values but 1 y values"), hg::Error);
}

TEST_CASE("train: panels from a CSV log, written as a file") {
  TempDir dir("plot");
  train::CsvLog log(dir.path / "log.csv", {"epoch", "train_loss", "val_loss", "val_accuracy", "lr", "seconds"});
  log.write({1, 1.0, 1.1, 0.6, 0.1, 3});
  log.write({2, 0.5, 0.7, 0.8, 0.05, 6});
  std::vector<train::Panel> panels = train::panels_from_log(log, "epoch", {"seconds"});
  REQUIRE(panels.size() == 3);
  CHECK(panels[0].title == "loss");
  REQUIRE(panels[0].series.size() == 2);
  CHECK(panels[0].series[0].name == "train");
  CHECK_FALSE(panels[0].series[0].dashed);
  CHECK(panels[0].series[1].name == "val");
  CHECK(panels[0].series[1].dashed);
  CHECK(panels[0].series[1].y == std::vector<double>{1.1, 0.7});
  CHECK(panels[1].title == "accuracy");
  CHECK(panels[2].title == "lr");
  CHECK(panels[2].series[0].x == std::vector<double>{1, 2});

  fs::path svg_path = dir.path / "curves.svg";
  train::write_svg_plot(svg_path, panels, "run");
  std::string svg = read_text(svg_path);
  CHECK(xml_problem(svg) == "");
  CHECK(count(svg, "<polyline") == 4);
  int leftovers = 0;  // the temporary file was renamed into place
  for (const auto& entry : fs::directory_iterator(dir.path))
    leftovers += entry.path().string().find(".tmp") != std::string::npos;
  CHECK(leftovers == 0);
  CHECK_THROWS_WITH_AS(train::panels_from_log(log, "step"), doctest::Contains("no column 'step'"), hg::Error);
}
