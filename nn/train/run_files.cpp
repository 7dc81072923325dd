#include <hopgrad/nn/train/run_files.h>

#include <fstream>
#include <iterator>

#include <hopgrad/core/error.h>
#include <hopgrad/nn/serialize/atomic_file.h>

namespace hg::train {

namespace fs = std::filesystem;

void check_resume_config(std::string_view program, const fs::path& path, const std::string& config, bool resume) {
  if (resume && fs::exists(path)) {
    std::ifstream in(path);
    const std::string recorded((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    HG_CHECK(recorded == config, "{}: --resume: {} was written by a run with other settings:\n  recorded: {}\n  "
             "this run: {}", program, path.string(), recorded, config);
    return;
  }
  HG_CHECK(!resume, "{}: --resume: there is no {} (no run to continue in this --out-dir)", program, path.string());
  fs::create_directories(path.parent_path());
  std::ofstream out(path);
  out << config;
  HG_CHECK(out.good(), "{}: could not write {}", program, path.string());
}

void write_results_csv(std::string_view program, const fs::path& path,
                       const std::vector<std::vector<std::string>>& rows) {
  auto quoted = [](const std::string& cell) {
    if (cell.find_first_of(",\"\n") == std::string::npos) return cell;
    std::string out = "\"";
    for (char c : cell) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
  };
  std::string text;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (i) text += ',';
      text += quoted(row[i]);
    }
    text += '\n';
  }
  try {
    serialize::AtomicFile file(path);
    file.write(text.data(), text.size());
    file.commit();
  } catch (const Error& e) {
    HG_CHECK(false, "{}: could not write {}: {}", program, path.string(), e.what());
  }
}

}  // namespace hg::train
