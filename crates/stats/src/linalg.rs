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

/// Eigenvalues (ascending) and eigenvectors (the columns of the returned matrix) of a symmetric matrix:
/// Householder reduction to tridiagonal form and the implicit QL method (`tred2` and `tql2` of
/// EISPACK, as in JAMA). Only the lower triangle of `a` is read.
// A line-by-line port of the published algorithm: its index loops are kept as written, so that it can be
// checked against the original.
#[allow(clippy::needless_range_loop, clippy::manual_memcpy)]
pub fn sym_eigen(a: &Matrix) -> (Vec<f64>, Matrix) {
    let n = a.rows();
    let mut v: Vec<Vec<f64>> = (0..n).map(|i| a.row(i).to_vec()).collect();
    for i in 0..n {
        for j in 0..i {
            v[j][i] = v[i][j];
        }
    }
    let mut d = vec![0.0; n];
    let mut e = vec![0.0; n];
    if n == 0 {
        return (d, Matrix::zeros(0, 0));
    }
    // tred2: Householder reduction to tridiagonal form.
    for j in 0..n {
        d[j] = v[n - 1][j];
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for dk in d.iter().take(i) {
            scale += dk.abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[i - 1][j];
                v[i][j] = 0.0;
                v[j][i] = 0.0;
            }
        } else {
            for dk in d.iter_mut().take(i) {
                *dk /= scale;
                h += *dk * *dk;
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for ej in e.iter_mut().take(i) {
                *ej = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v[j][i] = f;
                g = e[j] + v[j][j] * f;
                for k in j + 1..i {
                    g += v[k][j] * d[k];
                    e[k] += v[k][j] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[k][j] -= f * e[k] + g * d[k];
                }
                d[j] = v[i - 1][j];
                v[i][j] = 0.0;
            }
        }
        d[i] = h;
    }
    for i in 0..n - 1 {
        v[n - 1][i] = v[i][i];
        v[i][i] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[k][i + 1] / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v[k][i + 1] * v[k][j];
                }
                for k in 0..=i {
                    v[k][j] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[k][i + 1] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[n - 1][j];
        v[n - 1][j] = 0.0;
    }
    v[n - 1][n - 1] = 1.0;
    e[0] = 0.0;
    // tql2: the implicit QL method on the tridiagonal matrix.
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0;
    let mut tst1: f64 = 0.0;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n {
            if e[m].abs() <= eps * tst1 {
                break;
            }
            m += 1;
        }
        if m > l {
            let mut iterations = 0;
            loop {
                iterations += 1;
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in d.iter_mut().take(n).skip(l + 2) {
                    *di -= h;
                }
                f += h;
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    for row in v.iter_mut() {
                        let hk = row[i + 1];
                        row[i + 1] = s * row[i] + c * hk;
                        row[i] = c * row[i] - s * hk;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 || iterations >= 60 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
    // Ascending order.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| d[*a].total_cmp(&d[*b]));
    let values = order.iter().map(|i| d[*i]).collect();
    let mut vectors = Matrix::zeros(n, n);
    for (new, old) in order.iter().enumerate() {
        for r in 0..n {
            *vectors.get_mut(r, new) = v[r][*old];
        }
    }
    (values, vectors)
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
    fn eigen_decomposition_reconstructs_the_matrix() {
        let a = Matrix::from_rows(
            4,
            4,
            vec![
                4.0, 1.0, -2.0, 2.0, 1.0, 2.0, 0.0, 1.0, -2.0, 0.0, 3.0, -2.0, 2.0, 1.0, -2.0, -1.0,
            ],
        );
        let (values, vectors) = sym_eigen(&a);
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
        for r in 0..4 {
            for c in 0..4 {
                let rebuilt: f64 = (0..4)
                    .map(|k| vectors.get(r, k) * values[k] * vectors.get(c, k))
                    .sum();
                assert!((rebuilt - a.get(r, c)).abs() < 1e-12, "{r} {c} {rebuilt}");
            }
        }
        // Orthonormal vectors.
        for p in 0..4 {
            for q in 0..4 {
                let d: f64 = (0..4).map(|r| vectors.get(r, p) * vectors.get(r, q)).sum();
                assert!((d - f64::from(u8::from(p == q))).abs() < 1e-12);
            }
        }
        // numpy.linalg.eigvalsh of the same matrix.
        let want = [
            -2.197_516_977_439_43,
            1.084_364_463_773_22,
            2.268_531_406_431_24,
            6.844_621_107_234_97,
        ];
        for (v, w) in values.iter().zip(want) {
            assert!((v - w).abs() < 1e-9, "{values:?}");
        }
    }

    #[test]
    fn a_repeated_column_is_named() {
        let x = Matrix::from_rows(3, 3, vec![1.0, 2.0, 2.0, 1.0, 3.0, 3.0, 1.0, 5.0, 5.0]);
        let g = x.weighted_gram(None);
        assert_eq!(cholesky(&g), Err(FitError::Singular { column: 2 }));
    }
}
