//! What the integration tests share.

use std::collections::BTreeMap;

use runpermit_compute::{Flop, HardwareTable};
use runpermit_permit::{MeterMethod, Metered};

/// Eight hours of one H100 SXM by scheduler accounting: seconds × its highest peak (what
/// runpermit-gate's `scheduler_accounting` makes of it).
pub fn eight_hours_of_one_h100() -> Metered {
    let chip = HardwareTable::builtin().lookup("H100 SXM").unwrap();
    let seconds = 8.0 * 3600.0;
    let upper = Flop::new(seconds * chip.max_peak().unwrap().1.get()).unwrap();
    Metered {
        method: MeterMethod::SchedulerAccounting,
        accelerator_seconds: BTreeMap::from([(chip.id.clone(), seconds)]),
        flop: upper,
        lower: Flop::ZERO,
        upper,
    }
}
