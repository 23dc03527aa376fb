# Reference numbers for winsignal's small-sample cluster-robust inference
# (crates/stats/tests/small_sample.rs): clubSandwich's CR2 covariance and Satterthwaite degrees of freedom
# for linear and logistic regression on the designs `small_sample.py` wrote.
#
# Logistic regression: winsignal applies CR2 to the weighted least-squares problem the fit solves at
# convergence (the IRLS working regression, whitened by the working weights p(1 - p)), so its reference is
# clubSandwich on exactly that regression: lm(z* ~ 0 + X*) with X* = sqrt(w) X and z* = sqrt(w) (X b +
# (y - p) / w). clubSandwich's own glm method takes the inverse square root in another metric (of
# V (I - H) V instead of I - H, V = diag(p(1 - p))); its numbers are kept as `*_glm` and differ by up to
# 3e-3 relative here (the test checks that too).
#
#     apt-get install r-cran-clubsandwich      # Debian's R 4.2.2 with clubSandwich 0.5.8
#     Rscript validation/small_sample.R        # writes validation/fixtures/small_sample_cr2.json
#
# Made 2026-12-05 with R 4.2.2, clubSandwich 0.5.8.
suppressMessages(library(clubSandwich))

fixtures <- "validation/fixtures/"
out <- list()
num <- function(x) formatC(x, digits = 17, format = "g")
add <- function(name, fit, data) {
  t <- coef_test(fit, vcov = "CR2", cluster = data$cluster, test = "Satterthwaite")
  v <- as.matrix(vcovCR(fit, cluster = data$cluster, type = "CR2"))
  out[[name]] <<- sprintf(
    '{"coef": [%s], "se": [%s], "df": [%s], "p": [%s], "cov_diag": [%s]}',
    paste(num(coef(fit)), collapse = ", "),
    paste(num(t$SE), collapse = ", "),
    paste(num(t$df_Satt), collapse = ", "),
    paste(num(t$p_Satt), collapse = ", "),
    paste(num(diag(v)), collapse = ", ")
  )
}
for (set in c("few", "twelve", "single")) {
  d <- read.csv(paste0(fixtures, "small_sample_", set, ".csv"))
  add(paste0(set, "_ols"), lm(log_amount ~ behaviour + size + seg1 + seg2, data = d), d)
  g <- glm(won ~ behaviour + size + seg1 + seg2, family = binomial(), data = d,
           control = glm.control(epsilon = 1e-14, maxit = 100))
  add(paste0(set, "_glm"), g, d)
  X <- model.matrix(g)
  p <- fitted(g)
  w <- p * (1 - p)
  xs <- sqrt(w) * X
  zs <- sqrt(w) * (drop(X %*% coef(g)) + (d$won - p) / w)
  add(paste0(set, "_logit"), lm(zs ~ 0 + xs), d)
}
json <- paste0(
  "{\n",
  paste(sprintf('  "%s": %s', names(out), unlist(out)), collapse = ",\n"),
  "\n}\n"
)
writeLines(json, paste0(fixtures, "small_sample_cr2.json"))
