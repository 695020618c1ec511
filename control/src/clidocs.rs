//! Man pages and shell completions made from a binary's clap definition, so that they
//! can never drift from the options the binary really takes. `vrouterctl completion`,
//! `vrouterctl generate-man` and vrouterd's hidden `--completion` / `--generate-man` call
//! these; scripts/package.sh ships what they write.

use clap::Command;
pub use clap_complete::Shell;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The completion script of `cmd` for `shell`, written to `out`.
pub fn completion(mut cmd: Command, shell: Shell, out: &mut dyn Write) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// Writes one man page for `cmd` and one for each of its visible subcommands, at every
/// depth (`vrouterctl-node-status.1` for `vrouterctl node status`), into `dir` in manual
/// `section` (made if missing); returns the files written.
pub fn write_man_pages(cmd: Command, section: &str, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    // Every command has --help: a `help` subcommand page would only repeat the parent's.
    let mut cmd = cmd.disable_help_subcommand(true);
    // Building names the subcommands' pages after their full path (display names).
    cmd.build();
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    write_pages(&cmd, section, dir, &mut written)?;
    Ok(written)
}

fn write_pages(
    cmd: &Command,
    section: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let page = clap_mangen::Man::new(cmd.clone()).section(section);
    let path = page.generate_to(dir)?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, section, dir, written)?;
    }
    Ok(())
}

/// The names of `cmd`'s visible subcommands at every depth, as paths (`["node",
/// "status"]`): what the man pages and completions must all cover.
pub fn subcommand_paths(cmd: &Command) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name().to_string();
        paths.push(vec![name.clone()]);
        for mut deeper in subcommand_paths(sub) {
            deeper.insert(0, name.clone());
            paths.push(deeper);
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Command {
        Command::new("tool")
            .version("1.2.3")
            .about("A sample tool")
            .subcommand(
                Command::new("node")
                    .about("Nodes")
                    .subcommand(Command::new("status").about("The status")),
            )
            .subcommand(Command::new("secret").hide(true))
    }

    #[test]
    fn a_page_per_visible_subcommand_at_every_depth() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_man_pages(sample(), "8", dir.path()).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["tool.8", "tool-node.8", "tool-node-status.8"]);
        let top = std::fs::read_to_string(dir.path().join("tool.8")).unwrap();
        assert!(top.starts_with(".ie"), "{top}");
        assert!(top.contains(".TH tool 8"), "{top}");
        assert!(top.contains("tool\\-node(8)"), "{top}");
        assert!(!top.contains("secret"), "{top}");
        assert_eq!(
            subcommand_paths(&sample()),
            [
                vec!["node".to_string()],
                vec!["node".into(), "status".into()]
            ]
        );
    }

    #[test]
    fn completions_name_the_binary_and_its_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh] {
            let mut out = Vec::new();
            completion(sample(), shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            for word in ["tool", "node", "status"] {
                assert!(text.contains(word), "{shell}: {word} missing:\n{text}");
            }
        }
    }
}
