"""Weighted linear least squares for designs whose columns are local in pixels.

The decomposition of a sky spectrum (:mod:`skymodelling.spectral.decompose`) fits a
B-spline continuum and hundreds of lines, each column non-zero over a few tens of pixels,
plus a few wide columns (the solar template times a coarse spline). :class:`BandedNormal`
forms the normal equations once and solves them, or any principal sub-system (lines
dropped without recomputing anything), by a block-tridiagonal Cholesky with the wide
columns as a dense border: the cost grows linearly with the number of columns.
"""
from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse as sp

#: Fewest columns in a block of the block-tridiagonal factorisation (:class:`_Normal`): 64
#: measured ~4 % faster than 24, 32, 48, 96 or 128 on red sky fibres (fewer LAPACK calls).
_MIN_BLOCK = 64


class _Normal:
    """Weighted least squares of a design whose columns are local in pixels.

    The normal matrix ``N = A^T W A`` is formed once (sparse); :meth:`solve` solves it,
    or the principal sub-system of chosen columns (lines dropped without recomputing
    anything), by a block-tridiagonal Cholesky: the local columns (the continuum spline
    and the lines, each non-zero over a limited pixel range) sorted by their first pixel
    fall into consecutive blocks of which only neighbours overlap; the ``nborder`` wide
    columns (the solar template's coarse spline) are eliminated through their Schur
    complement. Variances of chosen coefficients come from the diagonal blocks of the
    inverse (selected inversion, no full inverse), covariances among a few chosen
    coefficients from extra right-hand sides. A sparse LU is the fallback when a block
    is not numerically positive definite.

    Parameters
    ----------
    design : scipy.sparse matrix (npix, ncol)
    y, w : ndarray (npix,)
        Data and weights (0 = masked).
    border : bool ndarray (ncol,)
        Wide columns (few) handled as a dense border.
    """

    def __init__(self, design, y, w, border, *, ridge=1e-10):
        block = WeightedBlock(design, w)
        self._init(block.aw, block.sw, (block.r, block.c, block.v), block.first, block.last,
                   y, border, ridge)

    def _init(self, aw, sw, normal, first, last, y, border, ridge, rhs=None):
        self.r, self.c, self.v = normal
        # the weighted design: one matrix, or its column blocks side by side (extend)
        self._aw, self._sw = (aw if aw is None or isinstance(aw, tuple) else (aw,)), sw
        self.rhs = self._rhs(y) if rhs is None else rhs
        self.first, self.last = first, last
        self.border = np.asarray(border, bool)
        self.ridge = ridge
        self.ncol = len(first)
        self._state = None

    @classmethod
    def extend(cls, block, extra, y, border, *, ridge=1e-10):
        """The system of the design ``[block's design | extra]`` with ``block``'s weights.

        The normal matrix of ``block`` (:class:`WeightedBlock`) is reused: only the
        products involving the ``extra`` columns are formed (the lines of each fitting
        round beside the fixed continuum basis of the spectrum).
        """
        more = WeightedBlock(extra, None, sw=block.sw)
        nb = block.aw.shape[1]
        cross = (block.aw.T @ more.aw).tocoo()
        r = np.concatenate([block.r, cross.row, cross.col + nb, more.r + nb])
        c = np.concatenate([block.c, cross.col + nb, cross.row, more.c + nb])
        v = np.concatenate([block.v, cross.data, cross.data, more.v])
        self = cls.__new__(cls)
        self._init((block.aw, more.aw), block.sw, (r, c, v),
                   np.concatenate([block.first, more.first]),
                   np.concatenate([block.last, more.last]), y, border, ridge)
        return self

    def set_data(self, y):
        """New data ``y`` (same weights and design): only the right-hand side changes."""
        if self._aw is None:
            raise ValueError("this system was made by Reweighted.system: make another")
        self.rhs = self._rhs(y)

    def _rhs(self, y):
        swy = self._sw * y
        return np.concatenate([a.T @ swy for a in self._aw])

    def solve(self, sel=None, var=None, cov=None, sums=None):
        """Coefficients of the columns ``sel`` (all when None) fitted alone.

        ``var``: positions (in ``sel``) whose variances to return; ``cov``: positions
        whose full covariance to return; ``sums``: a list of position arrays, whose
        coefficient sums' variances to return (a group of blended lines: the sum is
        measured far better than its parts, whose errors anti-correlate). Returns (coef,
        variances, covariance), and the variances of the sums as a fourth element when
        ``sums`` is given. The sums' positions must be local columns (not the border).
        """
        sel = np.arange(self.ncol) if sel is None else np.asarray(sel, int)
        n = sel.size
        var = np.zeros(0, int) if var is None else np.asarray(var, int)
        cov = np.zeros(0, int) if cov is None else np.asarray(cov, int)
        want_sums = sums is not None
        sums = [np.asarray(g, int) for g in (sums or ())]
        # everything but the right-hand side depends on ``sel`` only: kept for the last
        # ``sel`` (a new right-hand side, :meth:`set_data`, reuses the factorisation)
        key = sel.tobytes()
        st = self._state if self._state is not None and self._state["key"] == key else None
        if st is None:
            st = self._setup(sel)
            st["key"] = key
            self._state = st
        scale, perm, inv, nloc = st["scale"], st["perm"], st["inv"], st["nloc"]
        r, c, v, dead = st["r"], st["c"], st["v"], st["dead"]
        b = (self.rhs[sel] * scale)[perm]
        # a sum of coefficients in the scaled, permuted system: weights scale at inv[g]
        groups = [(inv[g], scale[g]) for g in sums]
        try:
            if var.size or cov.size or groups:
                x, xvar, xcov, gvar = self._block_solve(
                    r, c, v, b, dead, nloc, self.first[sel][perm], self.last[sel][perm],
                    inv[var], inv[cov], groups)
            else:
                if "band" not in st:
                    st["band"] = self._band_factor(r, c, v, dead, nloc)
                x = self._band_apply(st["band"], b, nloc)
                xvar, xcov, gvar = np.zeros(0), np.zeros((0, 0)), np.zeros(0)
        except np.linalg.LinAlgError:
            x, xvar, xcov, gvar = self._lu_solve(r, c, v, b, dead, inv[var], inv[cov],
                                                 groups)
        coef = np.empty(n)
        coef[perm] = x
        coef *= scale
        out = (coef, xvar * scale[var] ** 2, xcov * scale[cov][:, None] * scale[cov][None, :])
        return (*out, gvar) if want_sums else out

    def _setup(self, sel):
        """The sub-matrix of the columns ``sel``: scaled to unit diagonal, permuted (local
        columns by first pixel, then the border)."""
        n = sel.size
        where = np.full(self.ncol, -1)
        where[sel] = np.arange(n)
        r, c = where[self.r], where[self.c]
        keep = (r >= 0) & (c >= 0)
        r, c, v = r[keep], c[keep], self.v[keep]
        on = r == c
        diag = np.bincount(r[on], v[on], minlength=n)
        scale = np.where(diag > 0, 1.0 / np.sqrt(np.where(diag > 0, diag, 1.0)), 0.0)
        v = v * scale[r] * scale[c]
        dead = diag <= 0
        border = self.border[sel]
        first = np.where(border, np.iinfo(int).max, self.first[sel])
        perm = np.lexsort((self.last[sel], first))
        nloc = int(np.sum(~border))
        inv = np.empty(n, int)
        inv[perm] = np.arange(n)
        return {"scale": scale, "perm": perm, "inv": inv, "nloc": nloc, "r": inv[r],
                "c": inv[c], "v": v, "dead": dead[perm]}

    @staticmethod
    def _group_matrix(n, groups):
        """The sums' weight vectors as the columns of an (n, len(groups)) matrix."""
        g = np.zeros((n, len(groups)))
        for k, (pos, wts) in enumerate(groups):
            g[pos, k] = wts
        return g

    def _lu_solve(self, r, c, v, b, dead, var, cov, groups=()):
        from scipy.sparse.linalg import splu

        n = b.size
        ns = sp.csc_matrix((v, (r, c)), shape=(n, n)) + sp.diags(
            self.ridge + dead.astype(float))
        lu = splu(ns.tocsc())
        x = lu.solve(b)
        cols = np.concatenate([var, cov])
        if cols.size:
            e = np.zeros((n, cols.size))
            e[cols, np.arange(cols.size)] = 1.0
            z = lu.solve(e)
        else:
            z = np.zeros((n, 0))
        g = self._group_matrix(n, groups)
        gvar = np.einsum("ij,ij->j", g, lu.solve(g)) if len(groups) else np.zeros(0)
        return (x, z[var, np.arange(var.size)],
                z[np.ix_(cov, var.size + np.arange(cov.size))], gvar)

    def _band_factor(self, r, c, v, dead, nloc):
        """Banded Cholesky of the local columns (LAPACK pbtrf), the border's Schur complement."""
        from scipy.linalg import cho_solve_banded, cholesky_banded, lu_factor

        n = dead.size
        nb = n - nloc
        up = (r <= c) & (c < nloc)
        bw = int(np.max(c[up] - r[up])) if up.any() else 0
        ab = np.zeros((bw + 1, nloc))
        ab[bw + r[up] - c[up], c[up]] = v[up]
        ab[bw] += self.ridge + dead[:nloc]
        factor = cholesky_banded(ab, lower=False, check_finite=False)
        if not nb:
            return factor, None, None, None
        bmat = np.zeros((nloc, nb))
        bor = (r < nloc) & (c >= nloc)
        bmat[r[bor], c[bor] - nloc] = v[bor]
        zb = cho_solve_banded((factor, False), bmat, check_finite=False)
        cb = (r >= nloc) & (c >= nloc)
        cmat = np.zeros((nb, nb))
        cmat[r[cb] - nloc, c[cb] - nloc] = v[cb]
        cmat[np.arange(nb), np.arange(nb)] += self.ridge + dead[nloc:]
        schur = lu_factor(cmat - bmat.T @ zb, check_finite=False)
        return factor, bmat, zb, schur

    @staticmethod
    def _band_apply(band, b, nloc):
        from scipy.linalg import cho_solve_banded, lu_solve

        factor, bmat, zb, schur = band
        z0 = cho_solve_banded((factor, False), b[:nloc], check_finite=False)
        if bmat is None:
            return z0
        xb = lu_solve(schur, b[nloc:] - bmat.T @ z0, check_finite=False)
        if not np.all(np.isfinite(xb)):
            raise np.linalg.LinAlgError("singular border")
        return np.concatenate([z0 - zb @ xb, xb])

    def _block_solve(self, r, c, v, b, dead, nloc, first, last, var, cov, groups=()):
        from scipy.linalg.lapack import dpotrf as potrf
        from scipy.linalg.lapack import dtrtri as trtri

        n = b.size
        nb = n - nloc
        # blocks: columns of block k + 2 start after every column of block k ends
        reach = np.maximum.accumulate(last[:nloc]) if nloc else np.zeros(0, int)
        starts = [0]
        if nloc:
            nxt = min(nloc, _MIN_BLOCK)
            while nxt < nloc:
                starts.append(nxt)
                after = int(np.searchsorted(first[:nloc], reach[nxt - 1], side="right"))
                nxt = min(nloc, max(after, nxt + _MIN_BLOCK))
        starts = np.array(starts + [nloc])
        nblk = starts.size - 1
        size = np.diff(starts)
        m = int(size.max()) if nblk else 0
        blk = np.repeat(np.arange(nblk), size)
        off = np.arange(nloc) - starts[blk]
        # right-hand sides: the data, the border columns, unit vectors for the covariance
        cov_loc = cov[cov < nloc]
        ng = len(groups)
        if ng and max(int(pos.max(initial=-1)) for pos, _ in groups) >= nloc:
            raise np.linalg.LinAlgError("sums of border columns not supported")
        k = 1 + nb + cov_loc.size
        dmat = np.zeros((nblk, m, m))
        emat = np.zeros((max(nblk - 1, 0), m, m))
        rhs = np.zeros((nblk, m, k))
        loc = (r < nloc) & (c < nloc)
        rl, cl, vl = r[loc], c[loc], v[loc]
        br, bc = blk[rl], blk[cl]
        same = br == bc
        dmat[br[same], off[rl[same]], off[cl[same]]] = vl[same]
        low = br == bc + 1
        emat[bc[low], off[rl[low]], off[cl[low]]] = vl[low]
        if np.any(np.abs(br - bc) > 1):
            raise np.linalg.LinAlgError("not block tridiagonal")
        pad = np.ones((nblk, m), bool)
        pad[blk, off] = False
        ridge = np.where(pad, 1.0, 0.0)
        ridge[blk, off] += self.ridge + dead[:nloc]
        dmat[:, np.arange(m), np.arange(m)] += ridge
        rhs[blk, off, 0] = b[:nloc]
        bor = (r < nloc) & (c >= nloc)
        rhs[blk[r[bor]], off[r[bor]], 1 + c[bor] - nloc] = v[bor]
        rhs[blk[cov_loc], off[cov_loc], 1 + nb + np.arange(cov_loc.size)] = 1.0
        # forward: N = L L^T, L block bidiagonal with diagonal Lk and sub-diagonal Mk; each
        # Lk's inverse (LAPACK trtri) turns the block solves into products, and its
        # blocks are what the selected inversion below needs
        inv_l, lower, ys = [], [], []
        mk = None
        for j in range(nblk):
            s = dmat[j] if mk is None else dmat[j] - mk @ mk.T
            lk, info = potrf(s, lower=1, clean=1)
            if info != 0:
                raise np.linalg.LinAlgError("a block is not positive definite")
            li, info = trtri(lk, lower=1)
            if info != 0:
                raise np.linalg.LinAlgError("a singular block")
            rj = rhs[j] if mk is None else rhs[j] - mk @ ys[-1]
            ys.append(li @ rj)
            inv_l.append(li)
            if j < nblk - 1:
                mk = emat[j] @ li.T
                lower.append(mk)
        xs = [None] * nblk
        for j in range(nblk - 1, -1, -1):
            yj = ys[j] if j == nblk - 1 else ys[j] - lower[j].T @ xs[j + 1]
            xs[j] = inv_l[j].T @ yj
        xall = np.concatenate([xs[j][:size[j]] for j in range(nblk)]) if nblk else np.zeros(
            (0, k))
        # the inverse of the local part within and next to the diagonal blocks (selected
        # inversion): its diagonal gives the variances, its blocks the sums' variances
        dvar = np.zeros(nloc)
        if var.size or ng:
            sig = None
            diag_blocks = np.zeros((nblk, m, m))
            next_blocks = np.zeros((max(nblk - 1, 0), m, m))   # (j + 1, j) blocks
            for j in range(nblk - 1, -1, -1):
                li = inv_l[j]
                s = li.T @ li
                if sig is not None:
                    p = (lower[j] @ li).T
                    s = s + p @ sig @ p.T
                    next_blocks[j] = -sig @ p.T
                sig = s
                diag_blocks[j] = s
                dvar[starts[j]:starts[j + 1]] = np.diag(s)[:size[j]]
        z0 = xall[:, 0]
        if nb:
            zb = xall[:, 1:1 + nb]
            bmat = np.zeros((nloc, nb))
            bmat[r[bor], c[bor] - nloc] = v[bor]
            cb = (r >= nloc) & (c >= nloc)
            cmat = np.zeros((nb, nb))
            cmat[r[cb] - nloc, c[cb] - nloc] = v[cb]
            cmat[np.arange(nb), np.arange(nb)] += self.ridge + dead[nloc:]
            schur = cmat - bmat.T @ zb
            sinv = np.linalg.inv(schur)
            if not np.all(np.isfinite(sinv)):
                raise np.linalg.LinAlgError("singular border")
            xb = sinv @ (b[nloc:] - bmat.T @ z0)
            xl = z0 - zb @ xb
            x = np.concatenate([xl, xb])
            full = np.zeros((n, nb))        # N^-1 restricted to the border's columns
            full[:nloc] = -zb @ sinv
            full[nloc:] = sinv
        else:
            x, full = z0, np.zeros((n, 0))
        xvar = np.zeros(var.size)
        isloc = var < nloc
        xvar[isloc] = dvar[var[isloc]]
        if nb:
            xvar[isloc] += np.einsum("ij,jk,ik->i", zb[var[isloc]], sinv, zb[var[isloc]])
            xvar[~isloc] = full[var[~isloc], var[~isloc] - nloc]
        xcov = np.zeros((cov.size, cov.size))
        if cov.size:
            # local-local from the unit right-hand sides (plus the border's correction);
            # pairs with a border column from N^-1's border columns (``full``)
            isl = cov < nloc
            cl, cb = cov[isl], cov[~isl] - nloc
            ll = xall[:, 1 + nb:][cl]
            if nb:
                ll = ll + zb[cl] @ sinv @ zb[cl].T
            xcov[np.ix_(isl, isl)] = ll
            if cb.size:
                xcov[np.ix_(isl, ~isl)] = full[cl][:, cb]
                xcov[np.ix_(~isl, isl)] = full[cl][:, cb].T
                xcov[np.ix_(~isl, ~isl)] = sinv[np.ix_(cb, cb)]
        # g^T N^-1 g = g^T (local inverse) g + (zb^T g)^T S^-1 (zb^T g); the members of a
        # group (neighbouring columns) lie in one block or two adjacent ones
        gvar = np.zeros(ng)
        if ng:
            gid = np.concatenate([np.full(pos.size, k) for k, (pos, _) in enumerate(groups)])
            pos = np.concatenate([pos for pos, _ in groups])
            wts = np.concatenate([wts for _, wts in groups])
            a, b = np.nonzero(gid[:, None] == gid[None, :])     # all pairs within groups
            ba, bb = blk[pos[a]], blk[pos[b]]
            if np.any(np.abs(ba - bb) > 1):
                raise np.linalg.LinAlgError("a group spans more than two blocks")
            oa, ob = off[pos[a]], off[pos[b]]
            ent = np.where(ba == bb, diag_blocks[ba, oa, ob], 0.0)
            up, dn = bb == ba + 1, ba == bb + 1
            ent[up] = next_blocks[ba[up], ob[up], oa[up]]
            ent[dn] = next_blocks[bb[dn], oa[dn], ob[dn]]
            gvar = np.bincount(gid[a], weights=wts[a] * wts[b] * ent, minlength=ng)
            if nb:
                zg = zb.T @ self._group_matrix(nloc, groups)
                gvar += np.einsum("ij,ik,kj->j", zg, sinv, zg)
        return x, xvar, xcov, gvar


BandedNormal = _Normal


#: Pair structures of designs (:class:`Reweighted`), by sparsity pattern.
_PAIRS: dict = {}


def _pair_structure(a):
    """For a CSR matrix with sorted indices: the pairs of non-zeros (data positions p <= q)
    within each row, their row, and the upper-triangle normal-matrix entry each adds to.

    Kept by sparsity pattern: the spectra of one camera share their bases' pattern.
    """
    key = (a.shape, hashlib.blake2b(a.indptr.tobytes() + a.indices.tobytes(),
                                    digest_size=16).digest())
    hit = _PAIRS.get(key)
    if hit is not None:
        return hit
    counts = np.diff(a.indptr)
    m = int(counts.max(initial=0))
    slot = np.arange(m)
    pos = a.indptr[:-1, None] + slot[None, :]
    valid = slot[None, :] < counts[:, None]
    ii, jj = np.triu_indices(m)
    ok = valid[:, ii] & valid[:, jj]
    p, q = pos[:, ii][ok], pos[:, jj][ok]
    rows = np.broadcast_to(np.arange(a.shape[0])[:, None], ok.shape)[ok]
    ncol = a.shape[1]
    ci, cj = a.indices[p], a.indices[q]          # ci <= cj: indices sorted within rows
    upper, inv = np.unique(ci.astype(np.int64) * ncol + cj, return_inverse=True)
    r, c = upper // ncol, upper % ncol
    hit = (p, q, rows, inv.ravel(), r, c, r != c)
    if len(_PAIRS) >= 16:
        _PAIRS.clear()
    _PAIRS[key] = hit
    return hit


class Reweighted:
    """One design solved with many weight vectors: its normal matrix for new weights is a
    weighted sum over the pairs of non-zeros of each pixel (no sparse product), for the
    first continuum's clipping passes (a few hundred thousand pairs, ~0.2 ms).
    """

    def __init__(self, design, border, *, ridge=1e-10):
        a = sp.csr_matrix(design)
        a.sort_indices()
        self.a = a
        (self.p, self.q, self.rows, self.inv, self.r, self.c,
         self.off) = _pair_structure(a)
        self.prod = a.data[self.p] * a.data[self.q]
        csc = a.tocsc()
        csc.sort_indices()
        self.first, self.last = _extents(csc)
        self.border = np.asarray(border, bool)
        self.ridge = ridge

    def system(self, y, w) -> BandedNormal:
        """The weighted least-squares system of data ``y`` with weights ``w``."""
        up = np.bincount(self.inv, weights=w[self.rows] * self.prod, minlength=self.r.size)
        off = self.off
        normal = (np.concatenate([self.r, self.c[off]]), np.concatenate([self.c, self.r[off]]),
                  np.concatenate([up, up[off]]))
        keep = normal[2] != 0       # as the sparse product: no stored zeros
        normal = tuple(x[keep] for x in normal)
        out = BandedNormal.__new__(BandedNormal)
        out._init(None, None, normal, self.first, self.last, None, self.border, self.ridge,
                  rhs=self.a.T @ (w * y))
        return out


class WeightedBlock:
    """Columns of a design weighted by sqrt(w), their normal matrix (COO) and pixel extents.

    Kept for the systems that share them (:meth:`BandedNormal.extend`).
    """

    def __init__(self, design, w, *, sw=None):
        a = sp.csc_matrix(design)
        a.sort_indices()
        self.sw = np.sqrt(w) if sw is None else sw
        aw = a.copy()
        aw.data = aw.data * self.sw[aw.indices]
        self.aw = aw
        normal = (aw.T @ aw).tocoo()
        self.r, self.c, self.v = normal.row, normal.col, normal.data
        self.first, self.last = _extents(a)


def _extents(csc) -> tuple[np.ndarray, np.ndarray]:
    """First and last non-zero row (pixel) of each column of a CSC matrix with sorted
    indices (0 for empty columns)."""
    has = np.diff(csc.indptr) > 0
    first = np.zeros(csc.shape[1], int)
    last = np.zeros(csc.shape[1], int)
    first[has] = csc.indices[csc.indptr[:-1][has]]
    last[has] = csc.indices[csc.indptr[1:][has] - 1]
    return first, last


def border_mask(ncol, ncont, nborder):
    """Which of ``ncol`` columns (continuum first) are the wide template columns."""
    border = np.zeros(ncol, bool)
    border[ncont - nborder:ncont] = True
    return border


_border = border_mask

__all__ = ["BandedNormal", "Reweighted", "WeightedBlock", "border_mask"]
