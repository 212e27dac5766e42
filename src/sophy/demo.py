"""``python -m sophy.demo``: the sophy README walkthrough against a temporary directory."""
from __future__ import annotations

import doctest
import re
import sys
import tempfile
from pathlib import Path
from typing import Optional

WALKTHROUGH = r'''
>>> from sophy import Sophia
>>> env = Sophia(DATA_DIR)
>>> db = env.create_database('mydb', 'string')
>>> db['k1'] = 'v1'
>>> db.update(k2='v2', k3='v3', k4='v4')
>>> with db.transaction() as txn:
...     txn['k1'] = 'v1-e'
...     txn['k5'] = 'v5'
>>> db['k1']
'v1-e'
>>> [item for item in db['k2': 'k444']]
[('k2', 'v2'), ('k3', 'v3'), ('k4', 'v4')]
>>> list(db['k3':'k1'])
[('k3', 'v3'), ('k2', 'v2'), ('k1', 'v1-e')]
>>> list(db[:'k3':True])
[('k3', 'v3'), ('k2', 'v2'), ('k1', 'v1-e')]
>>> del db['k3']
>>> 'k3' in db
False
>>> with db.transaction() as txn:
...     txn['k1'] = 'whoops'
...     txn.rollback()
...     txn['k2'] = 'v2-e2'
>>> list(db.items())
[('k1', 'v1-e'), ('k2', 'v2-e2'), ('k4', 'v4'), ('k5', 'v5')]
>>> db.update(aa='foo', abc='bar', az='baze', baz='nugget')
>>> list(db.cursor(prefix='a'))
[('aa', 'foo'), ('abc', 'bar'), ('az', 'baze')]
>>> multi = env.create_database('multi', ('string', 'u64'))
>>> multi[('hello', 100)] = 'sophy'
>>> multi[('hello', 100)]
'sophy'
>>> view = db.view('view-1')
>>> db['k1'] = 'changed'
>>> view['k1'], db['k1']
('v1-e', 'changed')
>>> view.close()
>>> env.close()
>>> env = Sophia(DATA_DIR, databases=[('mydb', 'string'), ('multi', ('string', 'u64'))])
>>> env['mydb']['k1'], env['multi'][('hello', 100)]
('changed', 'sophy')
>>> env.close()
'''


def main(argv: Optional[list] = None) -> int:
    """Run the walkthrough, echoing each step; returns the number of failed steps."""
    with tempfile.TemporaryDirectory(prefix="sophy-demo-") as tmp:
        data_dir = str(Path(tmp) / "data")
        parser = doctest.DocTestParser()
        test = parser.get_doctest(WALKTHROUGH, {"DATA_DIR": data_dir}, "walkthrough", None, 0)
        runner = doctest.DocTestRunner(verbose=False)
        for ex in test.examples:
            shown = re.sub(r"\n(?=.)", "\n... ", ex.source.rstrip("\n"))
            print(">>> " + shown)
            if ex.want:
                print(ex.want, end="")
        result = runner.run(test)
        print("\nwalkthrough: %d steps, %d failed (data in a temporary directory, removed)"
              % (result.attempted, result.failed))
        return result.failed


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
