//! A run folder's `plan.json` and a unit's `result.json`, as `status`,
//! `resume` and `collect` read them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_engine::run::unit;
use tessera_engine::run::Plan;

fuzz_target!(|data: &[u8]| {
    let (plan, result) = tessera_fuzz::split(data);
    let dir = tessera_fuzz::scratch().join("run");
    tessera_fuzz::file("run/plan.json", plan);
    tessera_fuzz::file("run/units/00000/result.json", result);
    if let Ok(plan) = Plan::load(&dir) {
        let _ = plan.describe();
        let _ = tessera_engine::run::status::describe(&plan, &dir, true);
    }
    let _ = unit::checked_result(&dir, 0);
});
