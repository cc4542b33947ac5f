//! `bedrock-batch report`: writes an output directory's HTML report, or
//! compares two runs (`--compare`), and says what to print and the exit code.

use crate::cli::ReportArgs;
use crate::error::{EXIT_OK, EXIT_REGRESSION};
use crate::report::{self, compare, rows::RunData};

pub fn run(args: &ReportArgs) -> anyhow::Result<(String, u8)> {
    if let Some(dirs) = &args.compare {
        // clap takes exactly two values for --compare.
        let (before, after) = (RunData::load(&dirs[0])?, RunData::load(&dirs[1])?);
        let c = compare::compare(&before, &after, args.threshold);
        let code = if args.fail_on_regression && !c.regressions.is_empty() {
            EXIT_REGRESSION
        } else {
            EXIT_OK
        };
        return Ok((c.text, code));
    }
    // clap requires OUTPUT_DIR without --compare.
    let dir = args.dir.as_deref().unwrap_or(std::path::Path::new("."));
    let (path, data) = report::write(dir, args.output.as_deref())?;
    Ok((report::closing_lines(&path, &data), EXIT_OK))
}
