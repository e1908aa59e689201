//! CMA-ES, the covariance matrix adaptation evolution strategy ((mu/mu_w, lambda) with
//! cumulative step-size adaptation, rank-one and rank-mu updates; the defaults of Hansen,
//! "The CMA Evolution Strategy: A Tutorial", 2016), as the search state between generations:
//! [`CmaState::ask`] draws a generation from the state and a random generator, and
//! [`CmaState::tell`] updates the state from their losses. Plain data (serde), so a search
//! stopped after any generation resumes exactly. Points outside the box are clamped into it
//! before they are evaluated, and the update learns from the clamped points.

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// The state of a CMA-ES search between generations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CmaState {
    /// Dimensions n.
    pub n: usize,
    /// Samples per generation (lambda).
    pub lambda: usize,
    /// The distribution's mean.
    pub mean: Vec<f64>,
    /// The overall step size sigma.
    pub sigma: f64,
    /// The evolution path of sigma.
    pub p_sigma: Vec<f64>,
    /// The evolution path of C.
    pub p_c: Vec<f64>,
    /// The covariance matrix C, row-major n x n.
    pub c: Vec<f64>,
    /// Generations told so far.
    pub told: usize,
}

/// The constants of the update for n dimensions and lambda samples.
struct Params {
    mu: usize,
    weights: Vec<f64>,
    mu_eff: f64,
    c_sigma: f64,
    d_sigma: f64,
    c_c: f64,
    c_1: f64,
    c_mu: f64,
    chi_n: f64,
}

impl Params {
    fn new(n: usize, lambda: usize) -> Params {
        let nf = n as f64;
        let mu = (lambda / 2).max(1);
        let raw: Vec<f64> = (0..mu)
            .map(|i| ((lambda as f64 + 1.0) / 2.0).ln() - ((i + 1) as f64).ln())
            .collect();
        let sum: f64 = raw.iter().sum();
        let weights: Vec<f64> = raw.iter().map(|w| w / sum).collect();
        let mu_eff = 1.0 / weights.iter().map(|w| w * w).sum::<f64>();
        let c_sigma = (mu_eff + 2.0) / (nf + mu_eff + 5.0);
        let d_sigma = 1.0 + 2.0 * (((mu_eff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + c_sigma;
        let c_c = (4.0 + mu_eff / nf) / (nf + 4.0 + 2.0 * mu_eff / nf);
        let c_1 = 2.0 / ((nf + 1.3).powi(2) + mu_eff);
        let c_mu =
            (1.0 - c_1).min(2.0 * (mu_eff - 2.0 + 1.0 / mu_eff) / ((nf + 2.0).powi(2) + mu_eff));
        let chi_n = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
        Params {
            mu,
            weights,
            mu_eff,
            c_sigma,
            d_sigma,
            c_c,
            c_1,
            c_mu,
            chi_n,
        }
    }
}

impl CmaState {
    /// A search around `mean` with step size `sigma` and the identity as covariance.
    pub fn new(mean: Vec<f64>, sigma: f64, lambda: usize) -> CmaState {
        let n = mean.len();
        let mut c = vec![0.0; n * n];
        for i in 0..n {
            c[i * n + i] = 1.0;
        }
        CmaState {
            n,
            lambda,
            mean,
            sigma,
            p_sigma: vec![0.0; n],
            p_c: vec![0.0; n],
            c,
            told: 0,
        }
    }

    /// Checks a state read back: sizes that agree, finite values, a positive step size.
    pub fn validate(&self, dim: usize, lambda: usize) -> Result<(), String> {
        let n = self.n;
        if n != dim || self.lambda != lambda {
            return Err(format!(
                "CMA-ES state for {n} dimensions and {} samples; the settings say {dim} and {lambda}",
                self.lambda
            ));
        }
        let sizes = [self.mean.len(), self.p_sigma.len(), self.p_c.len()];
        if sizes.iter().any(|&s| s != n) || self.c.len() != n * n {
            return Err("CMA-ES state vectors do not match its dimensions".into());
        }
        let mut all = self
            .mean
            .iter()
            .chain(&self.p_sigma)
            .chain(&self.p_c)
            .chain(&self.c);
        if !(self.sigma.is_finite() && self.sigma > 0.0) || all.any(|v| !v.is_finite()) {
            return Err("CMA-ES state holds a non-finite value or a step size <= 0".into());
        }
        Ok(())
    }

    fn cov(&self) -> DMatrix<f64> {
        DMatrix::from_row_slice(self.n, self.n, &self.c)
    }

    /// C's eigenvectors (columns) and the square roots of its eigenvalues (floored at a tiny
    /// positive value, so rounding never makes them negative).
    fn eigen(&self) -> (DMatrix<f64>, DVector<f64>) {
        let e = SymmetricEigen::new(self.cov());
        let d = e.eigenvalues.map(|v| v.max(1e-20).sqrt());
        (e.eigenvectors, d)
    }

    /// Draws `count` points x = mean + sigma B D z (z standard normal from `rng`), each
    /// clamped into `bounds`.
    pub fn ask(&self, count: usize, bounds: (f64, f64), rng: &mut ChaCha8Rng) -> Vec<Vec<f64>> {
        let (b, d) = self.eigen();
        (0..count)
            .map(|_| {
                let z = DVector::from_fn(self.n, |_, _| StandardNormal.sample(&mut *rng));
                let y = &b * z.component_mul(&d);
                (0..self.n)
                    .map(|i| (self.mean[i] + self.sigma * y[i]).clamp(bounds.0, bounds.1))
                    .collect()
            })
            .collect()
    }

    /// Updates mean, paths, covariance and step size from a generation's points and losses
    /// (NaN counts as worst). Fewer points than lambda (the budget's end) update with the
    /// weights of as many as there are.
    pub fn tell(&mut self, points: &[Vec<f64>], losses: &[f64]) {
        let n = self.n;
        let mut order: Vec<usize> = (0..points.len()).collect();
        let key = |i: usize| {
            if losses[i].is_nan() {
                f64::INFINITY
            } else {
                losses[i]
            }
        };
        order.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
        let p = Params::new(n, self.lambda.min(points.len()).max(2));
        let old = DVector::from_vec(self.mean.clone());
        let ys: Vec<DVector<f64>> = order
            .iter()
            .take(p.mu)
            .map(|&i| (DVector::from_vec(points[i].clone()) - &old) / self.sigma)
            .collect();
        let y_w = ys
            .iter()
            .zip(&p.weights)
            .fold(DVector::zeros(n), |acc, (y, w)| acc + y * *w);
        let (b, d) = self.eigen();
        // C^(-1/2) y_w = B D^-1 B^T y_w.
        let inv_sqrt = &b * (b.transpose() * &y_w).component_div(&d);
        let p_sigma = DVector::from_vec(self.p_sigma.clone()) * (1.0 - p.c_sigma)
            + inv_sqrt * (p.c_sigma * (2.0 - p.c_sigma) * p.mu_eff).sqrt();
        let norm = p_sigma.norm();
        let decay = 1.0 - (1.0 - p.c_sigma).powi(2 * (self.told as i32 + 1));
        let h_sigma = norm / decay.sqrt() < (1.4 + 2.0 / (n as f64 + 1.0)) * p.chi_n;
        let h = if h_sigma { 1.0 } else { 0.0 };
        let p_c = DVector::from_vec(self.p_c.clone()) * (1.0 - p.c_c)
            + &y_w * (h * (p.c_c * (2.0 - p.c_c) * p.mu_eff).sqrt());
        let mut c = self.cov() * (1.0 - p.c_1 - p.c_mu + (1.0 - h) * p.c_1 * p.c_c * (2.0 - p.c_c));
        c += (&p_c * p_c.transpose()) * p.c_1;
        for (y, w) in ys.iter().zip(&p.weights) {
            c += (y * y.transpose()) * (p.c_mu * w);
        }
        // Keep C exactly symmetric against rounding.
        let c = (&c + c.transpose()) * 0.5;
        self.mean = (old + &y_w * self.sigma).iter().copied().collect();
        self.sigma *= ((p.c_sigma / p.d_sigma) * (norm / p.chi_n - 1.0)).exp();
        self.p_sigma = p_sigma.iter().copied().collect();
        self.p_c = p_c.iter().copied().collect();
        self.c = c.transpose().iter().copied().collect();
        self.told += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn sphere(x: &[f64]) -> f64 {
        x.iter().map(|v| (v - 0.3) * (v - 0.3)).sum()
    }

    #[test]
    fn it_converges_on_a_shifted_sphere_and_resumes_exactly() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut s = CmaState::new(vec![0.0; 10], 0.3, 10);
        let mut copy = None;
        for g in 0..150 {
            if g == 40 {
                copy = Some((s.clone(), rng.clone()));
            }
            let xs = s.ask(10, (-1.0, 1.0), &mut rng);
            let f: Vec<f64> = xs.iter().map(|x| sphere(x)).collect();
            s.tell(&xs, &f);
        }
        assert!(sphere(&s.mean) < 1e-10, "{}", sphere(&s.mean));
        // From the copy taken at generation 40, through serde, the same end to the last bit.
        let (c, mut r) = copy.unwrap();
        let mut c: CmaState = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        for _ in 40..150 {
            let xs = c.ask(10, (-1.0, 1.0), &mut r);
            let f: Vec<f64> = xs.iter().map(|x| sphere(x)).collect();
            c.tell(&xs, &f);
        }
        assert_eq!(c, s);
    }

    #[test]
    fn the_step_size_grows_on_a_slope_and_shrinks_at_a_minimum() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut s = CmaState::new(vec![0.0; 5], 0.01, 8);
        for _ in 0..10 {
            let xs = s.ask(8, (-100.0, 100.0), &mut rng);
            let f: Vec<f64> = xs.iter().map(|x| x[0]).collect();
            s.tell(&xs, &f);
        }
        assert!(
            s.sigma > 0.02,
            "a linear slope lengthens the step: {}",
            s.sigma
        );
        let mut s = CmaState::new(vec![0.0; 5], 1.0, 8);
        for _ in 0..30 {
            let xs = s.ask(8, (-100.0, 100.0), &mut rng);
            let f: Vec<f64> = xs.iter().map(|x| x.iter().map(|v| v * v).sum()).collect();
            s.tell(&xs, &f);
        }
        assert!(
            s.sigma < 0.5,
            "at the minimum the step shrinks: {}",
            s.sigma
        );
    }
}
