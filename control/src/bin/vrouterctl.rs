//! vrouterctl: the command-line client of vrouterd's API. See `control::ctl`.

fn main() {
    control::ctl::main();
}
