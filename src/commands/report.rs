//! `bedrock-batch report`: writes an output directory's HTML report, or
//! compares two runs (`--compare`: the text, and `compare.html` in the after
//! run's directory or at `-o`), and says what to print and the exit code.

use crate::cli::ReportArgs;
use crate::error::{EXIT_OK, EXIT_REGRESSION};
use anyhow::Context;

use crate::report::{self, compare, compare_page, rows::RunData};

pub fn run(args: &ReportArgs) -> anyhow::Result<(String, u8)> {
    if let Some(dirs) = &args.compare {
        // clap takes exactly two values for --compare.
        let (before, after) = (RunData::load(&dirs[0])?, RunData::load(&dirs[1])?);
        let c = compare::compare(&before, &after, args.threshold);
        let page = compare_page::render(
            &c,
            &dirs[0].display().to_string(),
            &dirs[1].display().to_string(),
        );
        let path = args
            .output
            .clone()
            .unwrap_or_else(|| dirs[1].join(report::COMPARE_FILE));
        crate::output::fs::write_atomic(&path, page.as_bytes())
            .with_context(|| format!("{}: cannot write the comparison", path.display()))?;
        let code = if args.fail_on_regression && !c.regressions.is_empty() {
            EXIT_REGRESSION
        } else {
            EXIT_OK
        };
        return Ok((format!("{}report:   {}\n", c.text, path.display()), code));
    }
    // clap requires OUTPUT_DIR without --compare.
    let dir = args.dir.as_deref().unwrap_or(std::path::Path::new("."));
    let (path, data) = report::write(dir, args.output.as_deref())?;
    Ok((report::closing_lines(&path, &data), EXIT_OK))
}
