//! Small dense matrices (row-major) and the symmetric positive-definite solves the fits need.
// Triangular solves read best with explicit indexes.
#![allow(clippy::needless_range_loop)]

use crate::FitError;

#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    pub fn zeros(rows: usize, cols: usize) -> Matrix {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    pub fn identity(n: usize) -> Matrix {
        let mut m = Matrix::zeros(n, n);
        for i in 0..n {
            m.data[i * n + i] = 1.0;
        }
        m
    }

    /// From row-major data; `data.len()` must be `rows * cols`.
    pub fn from_rows(rows: usize, cols: usize, data: Vec<f64>) -> Matrix {
        assert_eq!(
            data.len(),
            rows * cols,
            "matrix data does not match its shape"
        );
        Matrix { rows, cols, data }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn get(&self, r: usize, c: usize) -> f64 {
        self.data[r * self.cols + c]
    }

    pub fn get_mut(&mut self, r: usize, c: usize) -> &mut f64 {
        &mut self.data[r * self.cols + c]
    }

    pub fn row(&self, r: usize) -> &[f64] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    pub fn row_mut(&mut self, r: usize) -> &mut [f64] {
        &mut self.data[r * self.cols..(r + 1) * self.cols]
    }

    pub fn column(&self, c: usize) -> Vec<f64> {
        (0..self.rows).map(|r| self.get(r, c)).collect()
    }

    pub fn scale(&mut self, s: f64) {
        self.data.iter_mut().for_each(|x| *x *= s);
    }

    pub fn mul(&self, other: &Matrix) -> Matrix {
        assert_eq!(self.cols, other.rows, "matrix shapes do not match");
        let mut out = Matrix::zeros(self.rows, other.cols);
        for i in 0..self.rows {
            for k in 0..self.cols {
                let a = self.get(i, k);
                if a == 0.0 {
                    continue;
                }
                let orow = other.row(k);
                let out_row = out.row_mut(i);
                for (o, b) in out_row.iter_mut().zip(orow) {
                    *o += a * b;
                }
            }
        }
        out
    }

    pub fn mul_vec(&self, v: &[f64]) -> Vec<f64> {
        (0..self.rows).map(|r| dot(self.row(r), v)).collect()
    }

    /// `Xᵀ diag(w) X` (with `w = 1` when `None`).
    pub fn weighted_gram(&self, w: Option<&[f64]>) -> Matrix {
        let k = self.cols;
        let mut g = Matrix::zeros(k, k);
        for i in 0..self.rows {
            let wi = w.map_or(1.0, |w| w[i]);
            if wi == 0.0 {
                continue;
            }
            let x = self.row(i);
            for a in 0..k {
                let xa = x[a] * wi;
                if xa == 0.0 {
                    continue;
                }
                // Zipped slices: no bounds checks, so the loop vectorises.
                for (gb, xb) in g.data[a * k + a..a * k + k].iter_mut().zip(&x[a..]) {
                    *gb += xa * xb;
                }
            }
        }
        for a in 0..k {
            for b in 0..a {
                g.data[a * k + b] = g.data[b * k + a];
            }
        }
        g
    }

    /// `Xᵀ v`.
    pub fn t_mul_vec(&self, v: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.cols];
        for (i, vi) in v.iter().enumerate().take(self.rows) {
            if *vi == 0.0 {
                continue;
            }
            for (o, x) in out.iter_mut().zip(self.row(i)) {
                *o += vi * x;
            }
        }
        out
    }
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The Cholesky factor `L` (lower) of a symmetric positive-definite matrix, or the first column whose
/// pivot is not clearly positive (relative to the diagonal) — a column that is (nearly) a linear
/// combination of the earlier ones.
pub fn cholesky(a: &Matrix) -> Result<Matrix, FitError> {
    let n = a.rows();
    let mut l = Matrix::zeros(n, n);
    for j in 0..n {
        let mut d = a.get(j, j);
        for k in 0..j {
            d -= l.get(j, k) * l.get(j, k);
        }
        let scale = a.get(j, j).abs().max(f64::MIN_POSITIVE);
        if d.is_nan() || d <= 1e-10 * scale || !d.is_finite() {
            return Err(FitError::Singular { column: j });
        }
        let d = d.sqrt();
        *l.get_mut(j, j) = d;
        for i in j + 1..n {
            let mut s = a.get(i, j);
            for k in 0..j {
                s -= l.get(i, k) * l.get(j, k);
            }
            *l.get_mut(i, j) = s / d;
        }
    }
    Ok(l)
}

/// Solves `A x = b` given the Cholesky factor of `A`.
pub fn cholesky_solve(l: &Matrix, b: &[f64]) -> Vec<f64> {
    let n = l.rows();
    let mut y = vec![0.0; n];
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l.get(i, k) * y[k];
        }
        y[i] = s / l.get(i, i);
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let mut s = y[i];
        for k in i + 1..n {
            s -= l.get(k, i) * x[k];
        }
        x[i] = s / l.get(i, i);
    }
    x
}

/// The inverse of a symmetric positive-definite matrix.
pub fn spd_inverse(a: &Matrix) -> Result<Matrix, FitError> {
    let l = cholesky(a)?;
    let n = a.rows();
    let mut inv = Matrix::zeros(n, n);
    let mut e = vec![0.0; n];
    for j in 0..n {
        e.iter_mut().for_each(|x| *x = 0.0);
        e[j] = 1.0;
        let col = cholesky_solve(&l, &e);
        for i in 0..n {
            *inv.get_mut(i, j) = col[i];
        }
    }
    // Exact symmetry, so that quadratic forms do not depend on the order of the loops above.
    for i in 0..n {
        for j in 0..i {
            let m = 0.5 * (inv.get(i, j) + inv.get(j, i));
            *inv.get_mut(i, j) = m;
            *inv.get_mut(j, i) = m;
        }
    }
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_a_known_matrix() {
        let a = Matrix::from_rows(2, 2, vec![4.0, 2.0, 2.0, 3.0]);
        let inv = spd_inverse(&a).unwrap_or_else(|e| panic!("{e}"));
        // det = 8; inverse = [3, -2; -2, 4] / 8.
        let want = [0.375, -0.25, -0.25, 0.5];
        for (i, w) in want.iter().enumerate() {
            assert!((inv.data[i] - w).abs() < 1e-14, "{:?}", inv.data);
        }
    }

    #[test]
    fn a_repeated_column_is_named() {
        let x = Matrix::from_rows(3, 3, vec![1.0, 2.0, 2.0, 1.0, 3.0, 3.0, 1.0, 5.0, 5.0]);
        let g = x.weighted_gram(None);
        assert_eq!(cholesky(&g), Err(FitError::Singular { column: 2 }));
    }
}
