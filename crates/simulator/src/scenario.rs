//! Built-in scenarios. `demo` moves a handful of invented patients' orders
//! through the lab lifecycle on a fixed script, then keeps going with new
//! orders, so a newcomer sees partial results, full results and amendments
//! arrive within a minute. Everything is deterministic: the same ticks give
//! the same moves. All names are invented.

use std::collections::VecDeque;
use std::str::FromStr;
use std::time::Duration;

use crate::state::{NewOrder, World};
use crate::Shared;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// A clinic with no patients and no orders (tests build their own world).
    Empty,
    /// A fixed set of orders covering every documented state; nothing moves.
    Sample,
    /// The sample clinic, moving one order every step.
    Demo,
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "empty" => Ok(Scenario::Empty),
            "sample" => Ok(Scenario::Sample),
            "demo" => Ok(Scenario::Demo),
            other => Err(format!(
                "unknown scenario `{other}` (expected empty, sample or demo)"
            )),
        }
    }
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Empty => "empty",
            Scenario::Sample => "sample",
            Scenario::Demo => "demo",
        }
    }
}

struct SampleOrder {
    first: &'static str,
    last: &'static str,
    name: &'static str,
    tests: &'static [&'static str],
    lab: &'static str,
    state: &'static str,
}

const fn sample(
    first: &'static str,
    last: &'static str,
    name: &'static str,
    tests: &'static [&'static str],
    lab: &'static str,
    state: &'static str,
) -> SampleOrder {
    SampleOrder {
        first,
        last,
        name,
        tests,
        lab,
        state,
    }
}

const SAMPLE: &[SampleOrder] = &[
    sample(
        "Jordan",
        "Ellis",
        "Comprehensive Metabolic Panel",
        &["Comprehensive Metabolic Panel"],
        "Quest Diagnostics",
        "processing",
    ),
    sample(
        "Priya",
        "Raman",
        "Thyroid Panel",
        &["TSH", "Free T4", "Free T3"],
        "Access Medical Labs",
        "processing",
    ),
    sample(
        "Marcus",
        "Webb",
        "Lipid Panel",
        &["Lipid Panel"],
        "Quest Diagnostics",
        "results_ready",
    ),
    sample(
        "Sofia",
        "Alvarez",
        "GI-MAP Stool Test",
        &["GI-MAP"],
        "Diagnostic Solutions Laboratory",
        "purchased",
    ),
    sample(
        "Hannah",
        "Okafor",
        "DUTCH Complete",
        &["DUTCH Complete"],
        "Precision Analytical",
        "results_ready",
    ),
    sample(
        "Liam",
        "Chen",
        "Vitamin D, 25-Hydroxy",
        &["Vitamin D, 25-Hydroxy"],
        "Quest Diagnostics",
        "upcoming_appointment",
    ),
    sample(
        "Grace",
        "Whitfield",
        "Hemoglobin A1c",
        &["Hemoglobin A1c"],
        "Access Medical Labs",
        "interpretation_shared",
    ),
    sample(
        "Daniel",
        "Moreau",
        "Food Sensitivity Panel",
        &["IgG Food Panel", "IgA Food Panel"],
        "Genova Diagnostics",
        "not_purchased",
    ),
    sample(
        "Amara",
        "Nwosu",
        "Iron Panel",
        &["Ferritin", "Iron, TIBC"],
        "Quest Diagnostics",
        "schedule_appointment",
    ),
    sample(
        "Noah",
        "Fischer",
        "Comprehensive Stool Analysis",
        &["Stool Analysis", "Parasitology"],
        "Doctor's Data",
        "partial_results",
    ),
    sample(
        "Mei",
        "Tanaka",
        "Hormone Panel",
        &["Estradiol", "Progesterone"],
        "Access Medical Labs",
        "results_amended",
    ),
    sample(
        "Elena",
        "Petrova",
        "Cortisol Awakening Response",
        &["Cortisol (4x)"],
        "Precision Analytical",
        "interpretation_ready",
    ),
];

/// Stable ids so a demo restarted with the same data directory sees the same orders.
fn fixed_id(kind: u128, n: usize) -> String {
    uuid::Uuid::from_u128(0x0f5c_0000_0000_4000_8000_0000_0000_0000 | (kind << 64) | n as u128)
        .to_string()
}

pub fn seed(world: &mut World, scenario: Scenario) {
    if scenario == Scenario::Empty {
        return;
    }
    for (i, s) in SAMPLE.iter().enumerate() {
        let patient = world.add_patient_with_id(&fixed_id(1, i), s.first, s.last);
        let mut spec = NewOrder::for_patient(&patient.id)
            .named(s.name, s.tests)
            .in_state(s.state);
        spec.id = Some(fixed_id(2, i));
        spec.lab_company = s.lab.to_string();
        // The fixed sample data is valid by construction.
        let _ = world.add_order(spec);
    }
}

/// The demo's moves: which sample order (by index) goes to which state.
const SCRIPT: &[(usize, &str)] = &[
    (1, "partial_results"),
    (0, "results_ready"),
    (3, "processing"),
    (1, "results_ready"),
    (2, "results_amended"),
    (5, "processing"),
    (7, "purchased"),
    (5, "results_ready"),
    (3, "partial_results"),
    (8, "upcoming_appointment"),
    (3, "results_ready"),
    (4, "interpretation_ready"),
    (2, "results_amended"),
    (8, "processing"),
    (7, "schedule_appointment"),
    (8, "partial_results"),
];

/// Lifecycles for the orders the demo keeps creating after the script.
const LIFECYCLES: &[&[&str]] = &[
    &[
        "processing",
        "partial_results",
        "results_ready",
        "interpretation_ready",
    ],
    &[
        "schedule_appointment",
        "upcoming_appointment",
        "processing",
        "results_ready",
    ],
    &["processing", "results_ready", "results_amended"],
];

const NEW_ORDERS: &[(&str, &[&str], &str)] = &[
    (
        "Comprehensive Metabolic Panel",
        &["Comprehensive Metabolic Panel"],
        "Quest Diagnostics",
    ),
    ("Thyroid Panel", &["TSH", "Free T4"], "Access Medical Labs"),
    ("Omega-3 Index", &["Omega-3 Index"], "Genova Diagnostics"),
    (
        "Complete Blood Count",
        &["CBC with Differential"],
        "Quest Diagnostics",
    ),
];

/// Past this many orders, the demo drops its oldest finished one per new order,
/// so a demo left running all day stays small.
const DEMO_MAX_ORDERS: usize = 30;

struct DemoEngine {
    tick: usize,
    active: VecDeque<(String, VecDeque<&'static str>)>,
    created: usize,
}

impl DemoEngine {
    fn step(&mut self, world: &mut World) {
        let tick = self.tick;
        self.tick += 1;
        if let Some((idx, state)) = SCRIPT.get(tick) {
            let _ = world.set_state(&fixed_id(2, *idx), state, false);
            return;
        }
        if self.active.len() < 2 {
            self.start_new_order(world);
        }
        if let Some((id, mut states)) = self.active.pop_front() {
            if let Some(state) = states.pop_front() {
                let _ = world.set_state(&id, state, false);
            }
            if !states.is_empty() {
                self.active.push_back((id, states));
            }
        }
    }

    fn start_new_order(&mut self, world: &mut World) {
        let n = self.created;
        self.created += 1;
        if world.orders.len() >= DEMO_MAX_ORDERS {
            let finished = world
                .orders
                .iter()
                .find(|o| {
                    matches!(
                        o.state.as_str(),
                        "interpretation_ready" | "interpretation_shared" | "results_ready"
                    ) && !self.active.iter().any(|(id, _)| id == &o.id)
                })
                .map(|o| o.id.clone());
            if let Some(id) = finished {
                let _ = world.remove_order(&id);
            }
        }
        let patient_id = fixed_id(1, n % SAMPLE.len());
        let (name, tests, lab) = NEW_ORDERS[n % NEW_ORDERS.len()];
        let mut spec = NewOrder::for_patient(&patient_id).named(name, tests);
        spec.id = Some(fixed_id(3, n));
        spec.lab_company = lab.to_string();
        if world.add_order(spec).is_ok() {
            let life = LIFECYCLES[n % LIFECYCLES.len()];
            self.active
                .push_back((fixed_id(3, n), life.iter().copied().collect()));
        }
    }
}

/// Drive the demo until the simulator shuts down.
pub async fn run_demo(shared: Shared, step: Duration) {
    let mut engine = DemoEngine {
        tick: 0,
        active: VecDeque::new(),
        created: 0,
    };
    let mut interval = tokio::time::interval(step.max(Duration::from_millis(100)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await; // the first tick fires at once; the first move waits one step
    loop {
        interval.tick().await;
        let mut world = shared.lock();
        engine.step(&mut world);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;

    #[test]
    fn demo_is_deterministic_and_raises_result_events() {
        let run = || {
            let mut world = World::new(SimConfig::default());
            seed(&mut world, Scenario::Demo);
            let mut engine = DemoEngine {
                tick: 0,
                active: VecDeque::new(),
                created: 0,
            };
            for _ in 0..60 {
                engine.step(&mut world);
            }
            let states: Vec<(String, String)> = world
                .orders
                .iter()
                .map(|o| (o.id.clone(), o.state.clone()))
                .collect();
            let event_states: Vec<String> = world.events.iter().map(|e| e.state.clone()).collect();
            (states, event_states)
        };
        let (a, events_a) = run();
        let (b, events_b) = run();
        assert_eq!(a, b);
        assert_eq!(events_a, events_b);
        for s in ["partial_results", "results_ready", "results_amended"] {
            assert!(events_a.iter().any(|e| e == s), "demo never reached {s}");
        }
        assert!(a.len() <= DEMO_MAX_ORDERS + 1);
    }
}
