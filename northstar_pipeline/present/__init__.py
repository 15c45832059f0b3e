"""What people read: terminal tables, tree drawings, the HTML page, build progress."""
