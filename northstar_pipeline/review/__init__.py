"""Pull-request review: two git revisions compared as syntax trees and as numbers on the same data."""
