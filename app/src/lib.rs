//! The Sluice console. Empty until the console issue lands.
