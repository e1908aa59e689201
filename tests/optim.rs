//! Differential Evolution on standard test functions, with fixed seeds.
//!
//! Documented thresholds (all strategies must reach them within the stated budget):
//! - sphere, 10-D in [-5, 5]: best < 1e-6 after 20 000 evaluations;
//! - Rosenbrock, 5-D in [-2, 2]: best < 1e-2 after 40 000 evaluations;
//! - Rastrigin, 5-D in [-5.12, 5.12]: best < 1.0 after 40 000 evaluations (SHADE, rand/1),
//!   best/1 (greedy) < 3.0.
//!
//! rand/1 runs with F = 0.5, CR = 0.9; best/1 with F = 0.7, CR = 0.9 (at F = 0.5 its population
//! collapses before the optimum: sphere stalls at 5e-3, measured); SHADE adapts its own.

use culturetune::optim::{DeOptions, DeState, StopReason, Strategy};
use std::convert::Infallible;
use std::ops::ControlFlow;

fn sphere(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum()
}

fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2)
        .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
        .sum()
}

fn rastrigin(x: &[f64]) -> f64 {
    10.0 * x.len() as f64
        + x.iter()
            .map(|v| v * v - 10.0 * (2.0 * std::f64::consts::PI * v).cos())
            .sum::<f64>()
}

fn batch(f: fn(&[f64]) -> f64) -> impl FnMut(&[Vec<f64>]) -> Result<Vec<f64>, Infallible> {
    move |xs| Ok(xs.iter().map(|x| f(x)).collect())
}

fn solve(
    f: fn(&[f64]) -> f64,
    dim: usize,
    bound: f64,
    evals: usize,
    strategy: Strategy,
    seed: u64,
) -> f64 {
    let opts = DeOptions {
        dim,
        pop_size: 10 * dim.clamp(4, 5),
        bounds: (-bound, bound),
        strategy,
        f: if strategy == Strategy::Best1Bin {
            0.7
        } else {
            0.5
        },
        max_evals: Some(evals),
        seed,
        ..DeOptions::default()
    };
    let mut s = DeState::new(opts).unwrap();
    let out = s.run(batch(f), |_, _| ControlFlow::Continue(())).unwrap();
    assert_eq!(out.reason, StopReason::Budget);
    assert_eq!(out.evals, evals);
    out.best_loss
}

const ALL: [Strategy; 4] = [
    Strategy::Rand1Bin,
    Strategy::Best1Bin,
    Strategy::Shade,
    Strategy::Cmaes,
];

/// The hand check of CMA-ES against SHADE before it went into tuning, 30 dimensions, 3000
/// evaluations, population 12: on the sphere CMA-ES gets over 1000x closer (6.9e-9 against
/// 1.3e-5); on an axis-aligned ellipsoid (coefficients 1..1000) SHADE is better (1.3e-2
/// against 0.83: its crossover exploits the separable axes, and CMA-ES has had too few
/// generations to learn the scales), while CMA-ES still gains a factor over 10 on its start.
#[test]
fn cmaes_beats_shade_on_smooth_functions_at_a_small_budget() {
    fn ellipsoid(x: &[f64]) -> f64 {
        let n = x.len() as f64;
        x.iter()
            .enumerate()
            .map(|(i, v)| 1e3f64.powf(i as f64 / (n - 1.0)) * v * v)
            .sum()
    }
    for (f, name) in [
        (sphere as fn(&[f64]) -> f64, "sphere"),
        (ellipsoid, "ellipsoid"),
    ] {
        let run = |strategy| {
            let opts = DeOptions {
                dim: 30,
                pop_size: 12,
                bounds: (-1.0, 1.0),
                strategy,
                max_evals: Some(3000),
                seed: 5,
                ..DeOptions::default()
            };
            let mut s = DeState::new(opts).unwrap();
            s.run(batch(f), |_, _| ControlFlow::Continue(()))
                .unwrap()
                .best_loss
        };
        let (cma, shade) = (run(Strategy::Cmaes), run(Strategy::Shade));
        eprintln!("{name}: CMA-ES {cma:.3e}, SHADE {shade:.3e}");
        match name {
            "sphere" => assert!(cma < shade / 1000.0, "{name}: CMA-ES {cma}, SHADE {shade}"),
            _ => {
                let start = DeState::new(DeOptions {
                    dim: 30,
                    pop_size: 12,
                    bounds: (-1.0, 1.0),
                    max_evals: Some(12),
                    seed: 5,
                    ..DeOptions::default()
                })
                .unwrap()
                .run(batch(f), |_, _| ControlFlow::Continue(()))
                .unwrap()
                .best_loss;
                assert!(cma < start / 10.0, "{name}: CMA-ES {cma} from {start}");
            }
        }
    }
}

#[test]
fn sphere_reaches_threshold() {
    for s in ALL {
        let b = solve(sphere, 10, 5.0, 20_000, s, 1);
        assert!(b < 1e-6, "{s:?}: {b}");
    }
}

#[test]
fn rosenbrock_reaches_threshold() {
    for s in ALL {
        let b = solve(rosenbrock, 5, 2.0, 40_000, s, 2);
        assert!(b < 1e-2, "{s:?}: {b}");
    }
}

#[test]
fn rastrigin_reaches_threshold() {
    for s in ALL {
        let b = solve(rastrigin, 5, 5.12, 40_000, s, 3);
        let limit = if s == Strategy::Best1Bin { 3.0 } else { 1.0 };
        assert!(b < limit, "{s:?}: {b}");
    }
}

fn trajectory(strategy: Strategy, seed: u64) -> Vec<(usize, f64, f64)> {
    let opts = DeOptions {
        dim: 6,
        pop_size: 12,
        bounds: (-3.0, 3.0),
        strategy,
        max_generations: Some(30),
        max_evals: None,
        seed,
        ..DeOptions::default()
    };
    let mut s = DeState::new(opts).unwrap();
    let mut t = vec![];
    s.run(batch(rastrigin), |g, _| {
        t.push((g.evals, g.best_loss, g.mean_loss));
        ControlFlow::Continue(())
    })
    .unwrap();
    t
}

#[test]
fn same_seed_same_trajectory_other_seed_other_trajectory() {
    for s in ALL {
        assert_eq!(trajectory(s, 7), trajectory(s, 7));
        assert_ne!(trajectory(s, 7), trajectory(s, 8));
        assert_eq!(trajectory(s, 7).len(), 31); // generation 0 + 30
    }
}

#[test]
fn checkpoint_and_resume_equals_an_uninterrupted_run() {
    for strategy in ALL {
        let opts = DeOptions {
            dim: 5,
            pop_size: 10,
            bounds: (-2.0, 2.0),
            strategy,
            max_evals: Some(600),
            seed: 11,
            ..DeOptions::default()
        };
        let mut whole = DeState::new(opts.clone()).unwrap();
        let full = whole
            .run(batch(rosenbrock), |_, _| ControlFlow::Continue(()))
            .unwrap();

        // Stop after generation 17, serialize, deserialize, resume.
        let mut first = DeState::new(opts).unwrap();
        let mut saved = String::new();
        let stopped = first
            .run(batch(rosenbrock), |g, st| {
                if g.index == 17 {
                    saved = serde_json::to_string(st).unwrap();
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        assert_eq!(stopped.reason, StopReason::Stopped);
        assert!(stopped.evals < full.evals);
        let mut resumed: DeState = serde_json::from_str(&saved).unwrap();
        let rest = resumed
            .run(batch(rosenbrock), |_, _| ControlFlow::Continue(()))
            .unwrap();
        assert_eq!(rest.best, full.best, "{strategy:?}");
        assert_eq!(rest.best_loss, full.best_loss);
        assert_eq!(rest.evals, full.evals);
        assert_eq!(resumed, whole);
    }
}

#[test]
fn origin_in_the_initial_population_bounds_the_result() {
    // A function whose minimum is the origin's value plus noise elsewhere: the best can never
    // be worse than f(0) when the origin is seeded.
    let f = |x: &[f64]| 1.0 + x.iter().map(|v| v.abs()).sum::<f64>();
    let opts = DeOptions {
        dim: 50,
        pop_size: 8,
        include_origin: true,
        max_evals: Some(16),
        seed: 5,
        ..DeOptions::default()
    };
    let mut s = DeState::new(opts).unwrap();
    let out = s
        .run(
            |xs: &[Vec<f64>]| Ok::<_, Infallible>(xs.iter().map(|x| f(x)).collect()),
            |_, _| ControlFlow::Continue(()),
        )
        .unwrap();
    assert_eq!(out.best_loss, 1.0);
    assert!(out.best.iter().all(|v| *v == 0.0));
}

#[test]
fn patience_stops_early_and_bad_options_are_rejected() {
    let opts = DeOptions {
        dim: 3,
        pop_size: 6,
        max_evals: None,
        patience: Some(3),
        seed: 1,
        ..DeOptions::default()
    };
    let mut s = DeState::new(opts).unwrap();
    let out = s
        .run(
            |xs: &[Vec<f64>]| Ok::<_, Infallible>(vec![1.0; xs.len()]),
            |_, _| ControlFlow::Continue(()),
        )
        .unwrap();
    assert_eq!(out.reason, StopReason::NoImprovement);
    assert_eq!(out.generations, 3);
    assert!(DeState::new(DeOptions {
        pop_size: 3,
        ..DeOptions::default()
    })
    .is_err());
    assert!(DeState::new(DeOptions {
        bounds: (1.0, -1.0),
        ..DeOptions::default()
    })
    .is_err());
}

/// SHA-256 of every generation's (evals, best loss, mean loss) bits.
fn fingerprint(strategy: Strategy, seed: u64) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (evals, best, mean) in trajectory(strategy, seed) {
        h.update((evals as u64).to_le_bytes());
        h.update(best.to_bits().to_le_bytes());
        h.update(mean.to_bits().to_le_bytes());
    }
    culturetune::fingerprint::hex(&h.finalize())[..16].to_string()
}

#[test]
fn every_strategy_searches_as_it_did_before_the_ask_tell_interface() {
    // Computed with the search loop that came before `Optimizer` (commit a1d4af1): the
    // interface changed no random draw and no selection.
    let pinned = [
        (Strategy::Rand1Bin, "3480b180dcc75905"),
        (Strategy::Best1Bin, "fd648fe030166a94"),
        (Strategy::Shade, "2741b6945eb9f053"),
        (Strategy::Cmaes, "670b9ab35fa87e05"),
    ];
    for (s, want) in pinned {
        assert_eq!(fingerprint(s, 7), want, "{s:?}");
    }
}

#[test]
fn asking_and_telling_by_hand_is_the_same_search_as_run() {
    use culturetune::optim::Optimizer;
    for strategy in ALL {
        let opts = DeOptions {
            dim: 4,
            pop_size: 8,
            strategy,
            max_evals: Some(40),
            seed: 3,
            ..DeOptions::default()
        };
        let mut by_run = DeState::new(opts.clone()).unwrap();
        let run = by_run
            .run(batch(sphere), |_, _| ControlFlow::Continue(()))
            .unwrap();
        let mut s = DeState::new(opts).unwrap();
        let mut generations = 0;
        loop {
            let points = s.ask();
            if points.is_empty() {
                break;
            }
            assert_eq!(s.ask(), points, "asking again asks for the same batch");
            assert!(s.tell(vec![0.0; points.len() + 1]).is_err());
            let g = s.tell(points.iter().map(|x| sphere(x)).collect()).unwrap();
            assert_eq!(g.index, generations);
            generations += 1;
            // The state between generations round-trips through JSON (a checkpoint).
            s = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        }
        assert!(s.tell(vec![1.0]).is_err(), "no batch was asked");
        assert_eq!(s.outcome(), run, "{strategy:?}");
        assert_eq!(s, by_run, "{strategy:?}");
    }
}
