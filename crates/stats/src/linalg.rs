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
        add_gram_upper(&self.data, k, w, &mut g.data);
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

/// Adds the upper triangle of `Σ_i w_i x_i x_iᵀ` to `out` (row-major `k × k`), for the rows `x_i` of the
/// row-major `rows` (`w` all ones when `None`). Rows are taken four at a time — a rank-4 update reads
/// and writes each cell of `out` once per four rows instead of once per row — and a column whose four
/// values are all zero (most of a block of dummies) is skipped.
pub fn add_gram_upper(rows: &[f64], k: usize, w: Option<&[f64]>, out: &mut [f64]) {
    if k == 0 {
        return;
    }
    let n = rows.len() / k;
    let weight = |i: usize| w.map_or(1.0, |w| w[i]);
    let mut i = 0;
    while i + 4 <= n {
        let x0 = &rows[i * k..(i + 1) * k];
        let x1 = &rows[(i + 1) * k..(i + 2) * k];
        let x2 = &rows[(i + 2) * k..(i + 3) * k];
        let x3 = &rows[(i + 3) * k..(i + 4) * k];
        let (w0, w1, w2, w3) = (weight(i), weight(i + 1), weight(i + 2), weight(i + 3));
        for a in 0..k {
            let (c0, c1, c2, c3) = (x0[a] * w0, x1[a] * w1, x2[a] * w2, x3[a] * w3);
            if c0 == 0.0 && c1 == 0.0 && c2 == 0.0 && c3 == 0.0 {
                continue;
            }
            // Zipped slices: no bounds checks, so the loop vectorises.
            let cells = out[a * k + a..(a + 1) * k]
                .iter_mut()
                .zip(&x0[a..])
                .zip(&x1[a..])
                .zip(&x2[a..])
                .zip(&x3[a..]);
            for ((((o, v0), v1), v2), v3) in cells {
                *o += c0 * v0 + c1 * v1 + c2 * v2 + c3 * v3;
            }
        }
        i += 4;
    }
    for i in i..n {
        let x = &rows[i * k..(i + 1) * k];
        let wi = weight(i);
        for a in 0..k {
            let c = x[a] * wi;
            if c == 0.0 {
                continue;
            }
            for (o, v) in out[a * k + a..(a + 1) * k].iter_mut().zip(&x[a..]) {
                *o += c * v;
            }
        }
    }
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
