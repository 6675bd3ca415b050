"""The `solver` role: claim jobs, train them with repops, publish, defend, get paid."""
