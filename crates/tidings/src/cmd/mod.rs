//! One module per subcommand.

pub mod check_config;
pub mod publish;
pub mod serve;
pub mod subscribe;
