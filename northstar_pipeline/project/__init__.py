"""Reading a project: its files, profiles and vars, its sources' shape, its periods, the Jinja sandbox."""
