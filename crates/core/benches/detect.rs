//! Change detection over 10,000 and 100,000 tracked orders per cycle
//! (targets: under 5 ms and 60 ms). Prints its figures; `cargo bench -p fsn-core`.

use std::collections::HashMap;
use std::time::Instant;

use fsn_core::config::NotifyStates;
use fsn_core::detect::{detect, AlertRules, Baseline, Tracked};
use fsn_core::lab::{LabOrder, LabState, ResultsSummary};
use fsn_core::secret::PatientName;

fn orders(n: usize) -> Vec<LabOrder> {
    (0..n)
        .map(|i| LabOrder {
            id: format!("{:08x}-0000-4000-8000-{:012x}", i, i),
            state: if i % 3 == 0 {
                LabState::ResultsReady
            } else {
                LabState::Processing
            },
            patient_name: Some(PatientName::new(format!("Patient {i}"))),
            title: Some("Comprehensive Metabolic Panel".into()),
            lab_name: Some("Quest Diagnostics".into()),
            test_names: vec!["Comprehensive Metabolic Panel".into(), "Lipid Panel".into()],
            results: Some(ResultsSummary {
                fingerprint: format!("{:016x}", i * 7919),
                count: 1,
                document_url: None,
            }),
            updated_at: Some("2026-11-27T08:00:00.000Z".into()),
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rules = AlertRules {
        notify: NotifyStates::default(),
    };
    let none = HashMap::new();
    println!("change detection (median of 21 runs, this machine):");
    for (n, target) in [(10_000usize, 5.0f64), (100_000, 60.0)] {
        let fetched = orders(n);
        let baseline = detect(&HashMap::new(), &fetched, &none, Baseline::Silent, &rules);
        let tracked: HashMap<String, Tracked> = baseline
            .upserts
            .iter()
            .map(|r| (r.id.clone(), r.tracked()))
            .collect();
        // Idle: nothing changed.
        let idle: Vec<f64> = (0..21)
            .map(|_| {
                let t = Instant::now();
                let d = detect(&tracked, &fetched, &none, Baseline::Off, &rules);
                assert!(d.upserts.is_empty());
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        // 1 % of orders moved to results_ready.
        let mut moved = fetched.clone();
        for o in moved.iter_mut().step_by(100) {
            o.state = LabState::ResultsAmended;
            o.updated_at = Some("2026-11-27T09:00:00.000Z".into());
        }
        let busy: Vec<f64> = (0..21)
            .map(|_| {
                let t = Instant::now();
                let d = detect(&tracked, &moved, &none, Baseline::Off, &rules);
                assert_eq!(d.alerts.len(), n / 100);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        let (i, b) = (median(idle), median(busy));
        println!(
            "  {n:>7} orders: {i:7.2} ms unchanged, {b:7.2} ms with 1% changed (target < {target} ms: {})",
            if i.max(b) < target { "met" } else { "MISSED" }
        );
    }
}
