"""A corpus of broken marimo cells for `benchmarks/monitor.py`, written for this project.

Each case: context cells (that work), one broken cell, the error class the
monitor must give it, a fact the error report must carry for a fix (`None`
when the class has none to carry), and whether the certain repairs fix it
without a model call.
"""

from __future__ import annotations

from dataclasses import dataclass

DF = (
    "import pandas as pd\n{n} = pd.DataFrame({{'temp_max': [10.0, 12.5], "
    "'weather': ['rain', 'sun'], 'wind': ['3', '4']}})"
)


@dataclass(frozen=True)
class Case:
    """One broken cell and what the monitor must say about it."""

    name: str
    context: tuple[str, ...]
    code: str
    expected: str
    fact: str | None
    repairable: bool = False


def _df(n: str) -> str:
    return DF.format(n=n)


CASES: list[Case] = [
    # --- syntax -----------------------------------------------------------------------
    Case("syn_paren", (), "total = (1 + 2", "syntax", "line 1"),
    Case("syn_colon", (), "for _i in range(3)\n    print(_i)", "syntax", "line 1"),
    Case("syn_indent", (), "x_ind = 1\n  y_ind = 2", "syntax", "line 2"),
    Case("syn_string", (), "label_s = 'unclosed", "syntax", "line 1"),
    Case("syn_assign", (), "1 = one_s", "syntax", "line 1"),
    Case("syn_keyword", (), "class = 3", "syntax", "line 1"),
    # --- marimo graph rules ------------------------------------------------------------
    Case(
        "graph_redefine_read",
        ("shared_g = 1", "use_g = shared_g + 1"),
        "shared_g = 2",
        "graph",
        "shared_g",
    ),
    Case("graph_cycle", ("cyc_a = cyc_b + 1",), "cyc_b = cyc_a + 1", "graph", "cycle"),
    Case("graph_redefine_import", ("import json",), "import json\njson.dumps({})", "graph", "json"),
    Case(
        "graph_private_1", ("tmp_g = 1",), "tmp_g = 5\nres_g1 = tmp_g * 2", "graph", "tmp_g", True
    ),
    Case(
        "graph_private_2",
        ("loop_g = 0",),
        "loop_g = [1, 2]\nres_g2 = sum(loop_g)",
        "graph",
        "loop_g",
        True,
    ),
    Case(
        "graph_private_3",
        ("def helper_g():\n    return 1",),
        "def helper_g():\n    return 2\nres_g3 = helper_g()",
        "graph",
        "helper_g",
        True,
    ),
    Case(
        "graph_redefine_two",
        ("two_a = 1\ntwo_b = 2", "two_c = two_a + two_b"),
        "two_a = 3\ntwo_b = 4",
        "graph",
        "two_a",
    ),
    # --- undefined names ----------------------------------------------------------------
    Case(
        "undef_typo",
        ("total_sales = 10",),
        "report_u1 = total_sale * 2",
        "undefined_name",
        "total_sales",
    ),
    Case("undef_case", ("RevenueU = 3",), "out_u2 = revenueu + 1", "undefined_name", "RevenueU"),
    Case("undef_never", ("alpha_u = 1",), "out_u3 = beta_u + alpha_u", "undefined_name", "alpha_u"),
    Case(
        "undef_in_func",
        ("count_u = 4",),
        "def _twice():\n    return cnt_u * 2\nout_u4 = _twice()",
        "undefined_name",
        "count_u",
    ),
    Case("undef_mo", (), "mo.md('hello')", "undefined_name", None, True),
    Case("undef_pd", (), "frame_u6 = pd.DataFrame({'a': [1]})", "undefined_name", None, True),
    Case("undef_np", (), "arr_u7 = np.arange(3)", "undefined_name", None, True),
    Case(
        "undef_alt",
        (_df("df_u8"),),
        "chart_u8 = alt.Chart(df_u8).mark_bar()",
        "undefined_name",
        None,
        True,
    ),
    Case(
        "undef_private",
        ("_hidden = 1",),
        "out_u9 = _hidden + 1",
        "undefined_name",
        "names in scope",
    ),
    # --- missing modules ----------------------------------------------------------------
    Case("mod_plain", (), "import nosuchlib_me", "missing_module", "nosuchlib-me"),
    Case("mod_from", (), "from nosuch_pkg_me import thing", "missing_module", "nosuch-pkg-me"),
    Case("mod_sklearn", (), "import sklearn.linear_model", "missing_module", "scikit-learn"),
    Case("mod_cv2", (), "import cv2", "missing_module", "opencv-python"),
    Case(
        "mod_skimage",
        (),
        "import skimage\nimg_m = skimage.data.camera()",
        "missing_module",
        "scikit-image",
    ),
    Case("mod_sub", (), "import json.nosuchsub_me", "missing_module", "json"),
    # --- missing columns and keys -------------------------------------------------------
    Case(
        "key_col", (_df("df_k1"),), "hot_k1 = df_k1['temp_maxx'].max()", "missing_key", "temp_max"
    ),
    Case(
        "key_col_list",
        (_df("df_k2"),),
        "sel_k2 = df_k2[['weather', 'tmp_max']]",
        "missing_key",
        "temp_max",
    ),
    Case("key_attr", (_df("df_k3"),), "w_k3 = df_k3.weathr.unique()", "missing_key", "weather"),
    Case(
        "key_dict",
        ("cfg_k4 = {'alpha': 1, 'beta': 2}",),
        "val_k4 = cfg_k4['alpah']",
        "missing_key",
        "alpha",
    ),
    Case(
        "key_groupby",
        (_df("df_k5"),),
        "g_k5 = df_k5.groupby('weathr').size()",
        "missing_key",
        "weather",
    ),
    Case("key_loc", (_df("df_k6"),), "v_k6 = df_k6.loc[0, 'wnd']", "missing_key", "wind"),
    Case(
        "key_nested",
        ("data_k7 = {'rows': {'x': 1}}",),
        "v_k7 = data_k7['row']",
        "missing_key",
        "rows",
    ),
    Case(
        "key_sort", (_df("df_k8"),), "s_k8 = df_k8.sort_values('temp')", "missing_key", "temp_max"
    ),
    Case(
        "key_polars",
        ("import polars as pl\npf_k9 = pl.DataFrame({'temp_max': [1.0]})",),
        "v_k9 = pf_k9['tmax']",
        "missing_key",
        "temp_max",
    ),
    Case(
        "key_drop",
        (_df("df_k10"),),
        "d_k10 = df_k10.drop(columns=['rain'])",
        "missing_key",
        "weather",
    ),
    # --- type and value errors in data --------------------------------------------------
    Case(
        "val_str_sum", (_df("df_v1"),), "tot_v1 = df_v1['wind'].sum() + 1", "data_value", "wind: "
    ),
    Case(
        "val_mean_str",
        (_df("df_v2"),),
        "m_v2 = df_v2['weather'].astype(float)",
        "data_value",
        "weather: ",
    ),
    Case("val_int_parse", ("raw_v3 = 'twelve'",), "n_v3 = int(raw_v3)", "data_value", "raw_v3"),
    Case("val_zero", ("den_v4 = 0",), "r_v4 = 10 / den_v4", "data_value", "den_v4"),
    Case("val_index", ("items_v5 = [1, 2]",), "third_v5 = items_v5[5]", "data_value", "items_v5"),
    Case("val_concat", ("num_v6 = 3",), "s_v6 = 'n=' + num_v6", "data_value", "num_v6"),
    Case("val_none_attr", ("res_v7 = None",), "u_v7 = res_v7.upper()", "data_value", "res_v7"),
    Case(
        "val_shape",
        ("import numpy as np\nm_v8 = np.ones((2, 3))",),
        "p_v8 = m_v8 @ m_v8",
        "data_value",
        "m_v8",
    ),
    Case(
        "val_dates",
        (_df("df_v9"),),
        "d_v9 = pd.to_datetime(df_v9['weather'])",
        "data_value",
        "weather: ",
    ),
    Case(
        "val_merge",
        (_df("df_v10"),),
        "j_v10 = df_v10.merge(df_v10, how='sideways')",
        "data_value",
        "df_v10",
    ),
    # --- timeouts -----------------------------------------------------------------------
    Case(
        "timeout_sleep", (), "import time\ntime.sleep(30)\ndone_t1 = True", "timeout", "time limit"
    ),
    Case("timeout_loop", (), "while True:\n    pass", "timeout", "time limit"),
    # --- resource limits ----------------------------------------------------------------
    Case("res_memory", (), "big_r1 = bytearray(10**14)", "resource_limit", "limits"),
    Case(
        "res_recursion",
        (),
        "def _f(n):\n    return _f(n + 1)\nr_r2 = _f(0)",
        "resource_limit",
        "limits",
    ),
    Case("res_list", (), "big_r3 = [0] * (10**13)", "resource_limit", "limits"),
    # --- interrupted --------------------------------------------------------------------
    Case("int_raise", (), "raise KeyboardInterrupt()", "interrupted", None),
    Case(
        "int_raise_call",
        (),
        "def _stop():\n    raise KeyboardInterrupt\n_stop()",
        "interrupted",
        None,
    ),
    # --- other --------------------------------------------------------------------------
    Case("oth_assert", ("limit_o1 = 5",), "assert limit_o1 > 10, 'too small'", "other", "limit_o1"),
    Case("oth_runtime", (), "raise RuntimeError('boom')", "other", "line 1"),
    Case(
        "oth_file",
        (),
        "text_o3 = open('no_such_file_me.csv').read()",
        "other",
        "no_such_file_me.csv",
    ),
    Case(
        "oth_custom",
        (),
        "class _Oops(Exception):\n    pass\nraise _Oops('bad state')",
        "other",
        "bad state",
    ),
    Case(
        "oth_notimpl", (), "def _todo():\n    raise NotImplementedError\n_todo()", "other", "_todo"
    ),
    Case("oth_stopiter", ("it_o6 = iter([])",), "first_o6 = next(it_o6)", "other", "it_o6"),
    Case(
        "oth_lookup", (), "import codecs\ncodecs.lookup('no-such-codec')", "other", "no-such-codec"
    ),
]
